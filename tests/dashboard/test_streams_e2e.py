"""Event streams over real HTTP under mod_wsgi-express (daemon mode) against the real RabbitMQ:
an event arrives, Last-Event-ID resumes, a gap is announced, streams end cleanly (lifetime, process
shutdown), and however many streams a process serves, it consumes an exchange through one queue."""

import contextlib
import time

import pytest
import requests

from . import broker
from .conftest import bearer, start_server
from .processes import daemon_pids, terminate
from .sse_client import SseStream

pytestmark = pytest.mark.e2e

VIEWER = {"Authorization": bearer("viewer")}


def open_stream(server, exchange, **headers):
    stream = SseStream(f"{server.url}/events/{exchange}", {**VIEWER, **headers})
    assert stream.status == 200, stream.response.read()
    return stream


def ready(stream):
    return stream.wait_for(lambda event: event.event == "ready")


def watched(server, exchange, **headers):
    """An open stream whose queue is bound: what is published from now on reaches it."""
    stream = open_stream(server, exchange, **headers)
    ready(stream)
    broker.wait_for_bindings(exchange, lambda queues: len(queues) >= 1)
    return stream


def broadcast(server, exchange, body, key=None, **headers):
    headers = {**VIEWER, "Content-Type": "application/json", **headers}
    if key is not None:
        headers["Idempotency-Key"] = key
    answer = requests.post(f"{server.url}/broadcast/{exchange}", data=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["message_id"]


def test_a_broadcast_arrives_as_one_event_with_its_id(stream_server, exchange):
    with watched(stream_server, exchange) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        assert stream.received[0].retry == 2000
        broadcast(stream_server, exchange, b'{"score": 1}', key="goal-1", **{"X-Amqp-Header-Team": "home"})
        [event] = stream.events("message")
        assert event.id == "goal-1"
        data = event.json
        assert (data["id"], data["kind"], data["body"]) == ("goal-1", "json", '{"score": 1}')
        assert (data["content_type"], data["headers"], data["exchange"]) == (
            "application/json",
            {"team": "home"},
            exchange,
        )


def test_an_idle_stream_sends_heartbeats(stream_server, exchange):
    with open_stream(stream_server, exchange) as stream:
        stream.wait_for(lambda event: event.comment == "heartbeat", timeout=5)


def test_last_event_id_resumes_after_that_event(stream_server, exchange):
    with watched(stream_server, exchange) as keeper:  # holds the feed while the other one reconnects
        sent = [broadcast(stream_server, exchange, b"{}", key=f"m{number}") for number in range(3)]
        assert [event.id for event in keeper.events("message", 3)] == sent
        with open_stream(stream_server, exchange, **{"Last-Event-ID": "m0"}) as resumed:
            ready(resumed)
            kinds = [(event.event, event.id) for event in resumed.received if event.event]
            assert kinds[:2] == [("message", "m1"), ("message", "m2")]
            assert "gap" not in [kind for kind, _ in kinds]


def test_the_ready_position_resumes_what_came_while_away(stream_server, exchange):
    with watched(stream_server, exchange) as keeper:
        with open_stream(stream_server, exchange) as first:
            position = ready(first).id
        assert position.startswith("~")
        broadcast(stream_server, exchange, b"{}", key="while-away")
        keeper.events("message")
        query = {"last_event_id": position}  # as the page reconnects: a fresh EventSource with a query
        url = f"{stream_server.url}/events/{exchange}?{requests.compat.urlencode(query)}"
        with SseStream(url, VIEWER) as second:
            ready(second)
            assert [event.id for event in second.received if event.event == "message"] == ["while-away"]


def test_a_gap_larger_than_the_buffer_is_announced_then_the_buffer_is_sent(stream_server, exchange):
    with watched(stream_server, exchange) as keeper:
        sent = [broadcast(stream_server, exchange, b"{}", key=f"n{number}") for number in range(7)]
        keeper.events("message", 7)  # all in the buffer of 5 by now: n0 and n1 are gone
        with open_stream(stream_server, exchange, **{"Last-Event-ID": "n0"}) as late:
            ready(late)
            events = [event for event in late.received if event.event in ("gap", "message")]
            assert events[0].event == "gap"
            gap = events[0].json
            assert (gap["reason"], gap["missed"], gap["resent"], gap["last_event_id"]) == (
                "unknown_id",
                None,
                5,
                "n0",
            )
            assert [event.id for event in events[1:]] == sent[2:]


def test_names_keys_and_methods_are_checked(stream_server):
    url = f"{stream_server.url}/events"
    assert requests.get(f"{url}/bad%20name", headers=VIEWER, timeout=5).status_code == 400
    assert requests.get(f"{url}/amq.fanout", headers=VIEWER, timeout=5).status_code == 403
    assert requests.get(f"{url}/t.x", timeout=5).status_code == 401
    watcher = {"Authorization": bearer("watcher")}
    assert requests.get(f"{url}/other.x", headers=watcher, timeout=5).status_code == 403
    assert requests.post(f"{url}/t.x", headers=VIEWER, timeout=5).status_code == 405


@pytest.fixture(scope="module")
def short_lived():
    """A gateway whose streams live 3 s (lifetime.ini)."""
    server = start_server("lifetime.ini", processes=1, threads=6)
    yield server
    server.stop()
    server.cleanup()


def test_a_stream_ends_by_itself_at_the_maximum_lifetime(short_lived, exchange):
    started = time.monotonic()
    with open_stream(short_lived, exchange) as stream:
        closing = stream.wait_for(lambda event: event.event == "closing", timeout=10)
        assert closing.json["reason"] == "max_lifetime"
        assert stream.next_event(5) is None and not stream.cut  # a clean end of the chunked body
    assert time.monotonic() - started < 3 + 1  # never past events_max_lifetime (+ one heartbeat)


def test_a_stream_ends_cleanly_when_its_process_shuts_down(short_lived, exchange):
    with open_stream(short_lived, exchange) as stream:
        ready(stream)
        [pid] = daemon_pids(short_lived)
        terminate(pid)  # as Apache restarts a daemon (graceful restart, maximum-requests, ...)
        closing = stream.wait_for(lambda event: event.event == "closing", timeout=10)
        assert closing.json["reason"] == "shutdown"
        assert stream.next_event(5) is None and not stream.cut
    # mod_wsgi starts another daemon, which serves streams again
    deadline = time.monotonic() + 30
    while daemon_pids(short_lived) in ([], [pid]):
        assert time.monotonic() < deadline, "no new daemon process"
        time.sleep(0.2)
    with contextlib.closing(SseStream(f"{short_lived.url}/events/{exchange}", VIEWER, timeout=30)) as again:
        assert again.status == 200
        ready(again)


@pytest.fixture(scope="module")
def two_processes():
    """Two daemon processes with room for the streams below."""
    server = start_server("stream.ini", processes=2, threads=60)
    yield server
    server.stop()
    server.cleanup()


def test_many_streams_share_one_queue_per_process(two_processes, exchange):
    streams = []
    try:
        for _ in range(40):
            streams.append(open_stream(two_processes, exchange))
        # a ready event's id is a position in its process's feed: ~<feed epoch>.<seq>.<ms>
        feeds = {ready(stream).id[1:].split(".")[0] for stream in streams}
        assert 1 <= len(feeds) <= 2
        queues = broker.wait_for_bindings(exchange, lambda queues: len(queues) >= len(feeds))
        assert len(queues) == len(feeds), queues  # one queue per process, never one per stream
        facts = broker.queue_facts(queues)
        expected = {"consumers": 1, "exclusive": True, "auto_delete": True}
        assert list(facts.values()) == [expected] * len(queues)
        broadcast(two_processes, exchange, b'{"to": "everyone"}', key="fan-out")
        for stream in streams:
            assert [event.id for event in stream.events("message")] == ["fan-out"]
    finally:
        for stream in streams:
            stream.close()
    # the last viewer has left: after the linger (1 s) every queue goes
    broker.wait_for_bindings(exchange, lambda queues: not queues, timeout=30)
