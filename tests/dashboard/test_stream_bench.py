"""The event-stream benchmark's own machinery (bench/streams.py, bench/sse_clients.py, bench/measure.py), kept
working: a few streams from two client processes against the gateway under mod_wsgi-express.

Only counts are asserted (every stream accepted, every delivery arrived, every message reached
every stream, the server's processes found); the benchmark's timings are figures, not tests.
"""

import pytest

from bench import measure
from bench import streams as bench

from .conftest import bearer, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

STREAMS = 6
MESSAGES = 3


@pytest.fixture(scope="module")
def server():
    gateway = start_server("stream.ini", processes=2, threads=12)
    yield gateway
    gateway.stop()
    gateway.cleanup()


def test_the_benchmark_counts_every_delivery_on_every_stream(server):
    result = bench.measure_streams(
        server.url,
        bearer("viewer"),
        STREAMS,
        MESSAGES,
        interval=0.1,
        clients=2,
        server_pids=lambda: measure.session_pids(server.process.pid),
    )
    assert result["accepted"] == STREAMS and result["statuses"]["200"] >= STREAMS
    assert result["lost_deliveries"] == 0 and result["closed_by_server"] == 0
    assert result["messages_reaching_all"] == MESSAGES
    assert result["per_delivery"]["p50_ms"] > 0
    assert result["reached_all"]["max_ms"] >= result["reached_first"]["max_ms"]
    kinds = result["server_rss_mib_by_kind"]
    assert kinds["mod_wsgi"]["processes"] == 2 and kinds["apache"]["processes"] >= 1
    assert result["server_rss_mib"]["with_streams"] > 0


def test_a_gateway_that_refuses_streams_is_counted_not_measured(server):
    result = bench.measure_streams(server.url, "Bearer not-a-key-0123456789", 2, MESSAGES, 0.1, clients=1)
    assert result["accepted"] == 0
    assert result["report"]["statuses"] == {"401": 2}
