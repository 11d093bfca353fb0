"""GET /metrics under mod_wsgi-express with 2 daemon processes: one view over both."""

import concurrent.futures
import pathlib
import time

import pytest

from harness import amqp
from harness.scrape import moved, samples, value
from tests.dashboard.sse_client import SseStream
from tests.e2e.client import FULL_KEY, LIMITED_KEY, Api, assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

CALLS = 24  # > the 10 threads of one process: both daemon processes must take some


def scrape(api):
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


def pids_with_files(gateway):
    """The processes that wrote metrics: ``counter_<pid>.db`` and the like in the server's folder."""
    folder = pathlib.Path(gateway.server_root) / "metrics"
    return {path.stem.rsplit("_", 1)[1] for path in folder.glob("*.db")}


def test_counters_of_both_processes_are_summed(api, gateway):
    exchange = amqp.unique("metrics")
    with amqp.BoundQueue(exchange, kind=amqp.RPC, routing_key="slow"):  # bound, nobody answers
        before = scrape(api)
        with concurrent.futures.ThreadPoolExecutor(CALLS) as pool:
            calls = [
                pool.submit(api.post, f"/rpc/{exchange}/slow", data=b"x", headers={"X-Timeout": "1"})
                for _ in range(CALLS)
            ]
            statuses = [call.result().status_code for call in calls]
        after = scrape(api)
    assert statuses == [504] * CALLS
    assert len(pids_with_files(gateway)) >= 2, "one process served every call"
    assert moved(before, after, "hutch_rpc_timeouts_total") == CALLS
    assert moved(before, after, "hutch_http_requests_total", app="rpc", status="504") == CALLS
    # each process: pika's connection, and the direct publisher's that carried the calls
    assert value(after, "hutch_broker_connected", connection="pika") == 2
    assert value(after, "hutch_broker_connected", connection="direct") == 2


def test_scraping_needs_the_metrics_permission(anonymous, gateway):
    assert_error(anonymous.get("/metrics"), 401, "unauthorized")
    assert_error(Api(gateway.url, key=LIMITED_KEY).get("/metrics"), 403, "forbidden")


def test_open_event_streams_are_counted_by_the_event_servers(api, gateway):
    """The event servers are processes of their own; their gauge reaches the same scrape."""
    exchange = amqp.unique("metrics")
    before = value(scrape(api), "hutch_event_streams_open")
    stream = SseStream(f"{gateway.url}/events/{exchange}", headers={"Authorization": f"Bearer {FULL_KEY}"})
    try:
        stream.wait_for(lambda event: event.event == "ready")
        after = scrape(api)
        assert value(after, "hutch_event_streams_open") == before + 1
        # the event servers count their requests as the gateway does: app="events"
        assert value(after, "hutch_http_requests_total", app="events", status="200") >= 1
    finally:
        stream.close()
    # Apache's proxy notices the gone client only when the next heartbeat (events_heartbeat, 15 s)
    # fails to reach it; only then does the event server see its connection close.
    deadline = time.monotonic() + 40
    while value(scrape(api), "hutch_event_streams_open") != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert value(scrape(api), "hutch_event_streams_open") == before
