"""The event tier end to end: ``hutch serve`` (mod_wsgi + two asyncio event servers on one port, the
real RabbitMQ), over real HTTP through Apache's proxy.

Auth as the gateway answers it (keys and the dashboard's tickets), history on open, exact resume on
another event-server process, a gap only after retention, a slow client cut off while the others keep
up, one consumer per exchange per process, heartbeats, lifetime and shutdown with ``closing``.
"""

import contextlib
import os
import pathlib
import signal
import socket
import threading
import time

import pika
import pytest
import requests

from harness import amqp
from harness import rabbitmqctl as broker
from harness.server import children_of
from hutch.amqp.history import HistoryPolicy
from hutch.auth import tickets
from tests.unit.test_openapi import error_enum

from .conftest import KEYS, PREFIX, basic, bearer, start_server
from .sse_client import SseStream, parse_block

pytestmark = pytest.mark.e2e

VIEWER = {"Authorization": bearer("viewer")}
SECRET = "dashboard-tests-secret-0123456789abcdef"  # stream.ini's session.secret
COUNT = 3  # stream.ini's events_history_count


def open_stream(server, exchange, headers=VIEWER, query="", timeout=10.0):
    stream = SseStream(f"{server.url}/events/{exchange}{query}", headers, timeout=timeout)
    assert stream.status == 200, stream.response.read()
    return stream


def ready(stream, timeout=15.0):
    return stream.wait_for(lambda event: event.event == "ready", timeout)


def broadcast(server, exchange, body, **headers):
    headers = {**VIEWER, "Content-Type": "text/plain", **headers}
    answer = requests.post(f"{server.url}/broadcast/{exchange}", data=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()


def bodies(events):
    return [event.json["body"] for event in events]


def event_server_pids(server):
    """The event servers ``hutch serve`` started (children of its process), found in /proc."""
    pids = []
    for pid, _daemon in children_of(server.process.pid):
        with contextlib.suppress(OSError):
            if b"hutch.events.main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
    return sorted(pids)


# --- authorization: the same 401/403 as the gateway --------------------------------------------------


def error_of_json(response):
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail"}
    return response.status_code, body["error"]


def test_keys_names_and_methods_are_checked_as_by_the_gateway(stream_server):
    url = f"{stream_server.url}/events"
    doc = requests.get(f"{stream_server.url}/openapi.json", timeout=5).json()
    documented = doc["paths"]["/events/{exchange}"]["get"]["responses"]

    def error_of(response):  # the JSON error, checked against what /openapi.json documents for /events
        status, code = error_of_json(response)
        assert code in error_enum(doc, documented[str(status)]), (status, code)
        return status, code

    missing = requests.get(f"{url}/t.dash.x", timeout=5)
    assert error_of(missing) == (401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="hutch", Basic realm="hutch"'
    wrong = requests.get(
        f"{url}/t.dash.x", headers={"Authorization": "Bearer not-a-key-0123456789"}, timeout=5
    )
    assert error_of(wrong) == (401, "unauthorized")
    publisher = {"Authorization": bearer("publisher")}
    assert error_of(requests.get(f"{url}/t.dash.x", headers=publisher, timeout=5)) == (403, "forbidden")
    watcher = {"Authorization": basic("watcher")}  # watch:t.* only, by HTTP Basic
    assert error_of(requests.get(f"{url}/other.x", headers=watcher, timeout=5)) == (403, "forbidden")
    assert error_of(requests.get(f"{url}/bad%20name", headers=VIEWER, timeout=5)) == (400, "invalid_name")
    assert error_of(requests.get(f"{url}/amq.fanout", headers=VIEWER, timeout=5)) == (403, "reserved_name")
    not_allowed = requests.post(f"{url}/t.dash.x", headers=VIEWER, timeout=5)
    assert error_of(not_allowed) == (405, "method_not_allowed")
    assert set(not_allowed.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    assert error_of_json(requests.get(f"{url}/t.dash.x/more", headers=VIEWER, timeout=5)) == (
        404,
        "not_found",
    )
    assert "aiohttp" not in missing.headers.get("Server", "")  # no server name and version to look up


def test_the_dashboard_ticket_opens_the_stream_for_its_key_and_exchange_only(stream_server, exchanges):
    exchange, other = exchanges(), exchanges()
    ticket_url = f"{stream_server.url}/dashboard/{exchange}/ticket"
    assert requests.get(ticket_url, timeout=5).status_code == 401
    assert (
        requests.get(ticket_url, headers={"Authorization": bearer("publisher")}, timeout=5).status_code == 403
    )
    answer = requests.get(ticket_url, headers={"Authorization": basic("viewer")}, timeout=5)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    ticket = answer.json()["ticket"]

    with open_stream(stream_server, exchange, headers={}, query=f"?ticket={ticket}") as stream:
        assert ready(stream).json["exchange"] == exchange
    url = f"{stream_server.url}/events"
    elsewhere = requests.get(f"{url}/{other}", params={"ticket": ticket}, timeout=5)
    assert error_of_json(elsewhere) == (401, "unauthorized")
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    assert error_of_json(requests.get(f"{url}/{exchange}", params={"ticket": forged}, timeout=5))[0] == 401
    key = tickets.signing_key(SECRET)
    expired = tickets.issue(key, "viewer", exchange, 60, now=time.time() - 120)
    assert error_of_json(requests.get(f"{url}/{exchange}", params={"ticket": expired}, timeout=5))[0] == 401
    # a validly signed ticket of a key without watch: 403, as for its header
    publisher = tickets.issue(key, "publisher", exchange, 60)
    assert error_of_json(requests.get(f"{url}/{exchange}", params={"ticket": publisher}, timeout=5)) == (
        403,
        "forbidden",
    )


def test_a_browser_logged_in_by_its_session_gets_a_ticket(stream_server, exchange):
    browser = requests.Session()
    login_page = browser.get(f"{stream_server.url}/dashboard/", headers={"Accept": "text/html"}, timeout=5)
    token = login_page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"action": "login", "api_key": KEYS["viewer"][0], "csrf_token": token}
    assert browser.post(f"{stream_server.url}/dashboard/", data=form, timeout=5, allow_redirects=False).ok
    ticket = browser.get(f"{stream_server.url}/dashboard/{exchange}/ticket", timeout=5).json()["ticket"]
    with open_stream(stream_server, exchange, headers={}, query=f"?ticket={ticket}") as stream:
        ready(stream)


def test_a_logged_in_browser_session_opens_its_event_stream_without_a_ticket(stream_server, exchange):
    """The session cookie authorizes /events as it authorizes the dashboard's pages."""
    url = f"{stream_server.url}/events/{exchange}"
    browser = requests.Session()
    login_page = browser.get(f"{stream_server.url}/dashboard/", headers={"Accept": "text/html"}, timeout=5)
    token = login_page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    anonymous = browser.get(url, timeout=5)  # a session, but nobody logged in
    assert error_of_json(anonymous) == (401, "unauthorized")
    form = {"action": "login", "api_key": KEYS["watcher"][0], "csrf_token": token}
    assert browser.post(f"{stream_server.url}/dashboard/", data=form, timeout=5, allow_redirects=False).ok
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    with open_stream(stream_server, exchange, headers={"Cookie": cookie}) as stream:
        ready(stream)
    # the session's key may watch t.* only; a forged cookie is no session
    forbidden = requests.get(f"{stream_server.url}/events/other.x", headers={"Cookie": cookie}, timeout=5)
    assert error_of_json(forbidden) == (403, "forbidden")
    forged = requests.get(url, headers={"Cookie": "hutch_session=forged"}, timeout=5)
    assert error_of_json(forged) == (401, "unauthorized")
    # logged out: the cookie's session is gone
    token = browser.get(f"{stream_server.url}/dashboard/", headers={"Accept": "text/html"}, timeout=5)
    token = token.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    browser.post(f"{stream_server.url}/dashboard/", data={"action": "logout", "csrf_token": token}, timeout=5)
    assert error_of_json(browser.get(url, timeout=5)) == (401, "unauthorized")


# --- history, resume, gap ------------------------------------------------------------------------------


def test_a_new_stream_replays_the_last_messages_oldest_first_then_goes_live(stream_server, history_exchange):
    exchange = history_exchange
    sent = [f"before {n}" for n in range(5)]
    for body in sent:
        assert broadcast(stream_server, exchange, body)["routed"] is True  # the stream is bound at once
    with open_stream(stream_server, exchange) as stream:
        replayed = stream.events("message", COUNT)
        assert bodies(replayed) == sent[-COUNT:]
        offsets = [int(event.id) for event in replayed]
        assert offsets == sorted(offsets) and [event.json["id"] for event in replayed] == [
            e.id for e in replayed
        ]
        start = ready(stream)
        assert start.json["replayed"] == COUNT and start.json["history"] is True
        assert start.id == replayed[-1].id
        broadcast(stream_server, exchange, "live")
        [live] = stream.events("message")
        assert live.json["body"] == "live" and int(live.id) > offsets[-1]


def test_history_exists_before_anyone_watches_and_keeps_the_exchange(stream_server, history_exchange):
    broadcast(stream_server, history_exchange, "nobody watching")
    queues = broker.bound_queues(history_exchange)
    assert queues == {HistoryPolicy.queue(history_exchange)}
    assert amqp.exchange_exists(history_exchange)  # bound forever: the auto-delete exchange stays


def test_last_event_id_resumes_exactly_on_the_other_event_server(stream_server, history_exchange):
    exchange = history_exchange
    broadcast(stream_server, exchange, "seen 0")
    with open_stream(stream_server, exchange) as first:
        [seen] = first.events("message")
        first_process = ready(first).json["process"]
        broadcast(stream_server, exchange, "seen 1")
        [seen] = first.events("message")
    missed = [f"missed {n}" for n in range(4)]
    for body in missed:
        broadcast(stream_server, exchange, body)
    # connections are spread over the two processes by the kernel: try until the other one answers
    for _attempt in range(40):
        with open_stream(stream_server, exchange, headers={**VIEWER, "Last-Event-ID": seen.id}) as again:
            resent = []
            while (
                event := again.wait_for(lambda e: e.event in ("message", "ready", "gap"))
            ).event == "message":
                resent.append(event)
            assert event.event == "ready", event
            assert event.json["replayed"] == len(resent)
            # this process's feed may read the last broadcasts just after the replay: they follow live
            resent += [again.wait_for(lambda e: e.event == "message") for _ in missed[len(resent) :]]
            assert bodies(resent) == missed  # exactly what was missed: no loss, no duplicate
            if event.json["process"] != first_process:
                break
    else:
        pytest.fail("the other event-server process never served a stream")
    assert len(event_server_pids(stream_server)) == 2


def test_a_gap_only_when_retention_dropped_what_the_client_missed(stream_server, history_exchange):
    exchange = history_exchange
    # a stream that keeps ~4 KB in 1 KB segments; the gateway finds it declared and binds it as it is
    with amqp.channel() as channel:
        arguments = {
            "x-queue-type": "stream",
            "x-max-length-bytes": 4000,
            "x-stream-max-segment-size-bytes": 1000,
        }
        channel.queue_declare(HistoryPolicy.queue(exchange), durable=True, arguments=arguments)
    broadcast(stream_server, exchange, "kept a moment")
    with open_stream(stream_server, exchange) as stream:
        [first] = stream.events("message")
    for n in range(40):
        broadcast(stream_server, exchange, f"{n:03d} " + "x" * 300)
    # resuming right after the first message: retention has dropped its successors
    with open_stream(stream_server, exchange, headers={**VIEWER, "Last-Event-ID": first.id}) as late:
        gap = late.wait_for(lambda event: event.event in ("gap", "message"))
        assert gap.event == "gap", gap
        assert (gap.json["reason"], gap.json["last_event_id"]) == ("retention", first.id)
        resumed = late.wait_for(lambda event: event.event == "message")
        assert resumed.id == gap.json["resumed_at"] and int(resumed.id) > int(first.id) + 1
        later = [resumed, *(late.wait_for(lambda e: e.event == "message") for _ in range(2))]
        assert [int(event.id) for event in later] == sorted(int(event.id) for event in later)
    # resuming from the newest message: nothing dropped after it, so no gap
    newest = later[-1].id
    with open_stream(stream_server, exchange, headers={**VIEWER, "Last-Event-ID": newest}) as recent:
        start = recent.wait_for(lambda event: event.event in ("gap", "ready"))
        assert start.event == "ready"


def test_an_unknown_id_is_reported_then_the_history_replayed(stream_server, history_exchange):
    broadcast(stream_server, history_exchange, "one")
    headers = {**VIEWER, "Last-Event-ID": "0b6e3c6f4c0a4f4c"}  # a message id of the old gateway
    with open_stream(stream_server, history_exchange, headers=headers) as stream:
        gap = stream.wait_for(lambda event: event.event == "gap")
        assert (gap.json["reason"], gap.json["last_event_id"]) == ("unknown_id", "0b6e3c6f4c0a4f4c")
        assert bodies(stream.events("message")) == ["one"]


def test_an_id_beyond_the_end_says_reset_and_delivers_what_comes_next(stream_server, history_exchange):
    """A bogus id, or one from before the stream was deleted and made anew, must not swallow the
    messages up to it: the stream says ``gap``/``reset``, replays the history and goes live."""
    exchange = history_exchange
    broadcast(stream_server, exchange, "one")
    with open_stream(stream_server, exchange, headers={**VIEWER, "Last-Event-ID": "999999"}) as stream:
        gap = stream.wait_for(lambda event: event.event == "gap")
        assert (gap.json["reason"], gap.json["last_event_id"]) == ("reset", "999999")
        assert bodies(stream.events("message")) == ["one"]
        assert ready(stream).id != "999999"
        broadcast(stream_server, exchange, "two")
        assert bodies(stream.events("message")) == ["two"]


def test_a_history_stream_made_anew_ends_streams_with_reset_and_old_ids_resume_nothing_lost(
    stream_server, history_exchange
):
    exchange = history_exchange
    for n in range(5):
        broadcast(stream_server, exchange, f"old {n}")
    with open_stream(stream_server, exchange) as stream:
        old = stream.events("message", COUNT)
        ready(stream)
        amqp.delete(queues=[HistoryPolicy.queue(exchange)])  # an operator deletes the history
        closing = stream.wait_for(lambda event: event.event == "closing")
        assert closing.json["reason"] == "reset"
    broadcast(stream_server, exchange, "new 0")  # the gateway makes the stream anew
    headers = {**VIEWER, "Last-Event-ID": old[-1].id}  # what a page that kept its id sends
    with open_stream(stream_server, exchange, headers=headers) as again:
        gap = again.wait_for(lambda event: event.event == "gap")
        assert gap.json["reason"] == "reset"
        assert bodies(again.events("message")) == ["new 0"]
        ready(again)
        broadcast(stream_server, exchange, "new 1")
        assert bodies(again.events("message")) == ["new 1"]


def test_an_exchange_of_another_type_is_409_not_a_retry_forever(stream_server, exchanges):
    """aiormq's precondition error has no reply code: it must still be the contract's 409."""
    exchange = exchanges(history=True)
    with amqp.channel() as channel:
        channel.exchange_declare(exchange, "direct", durable=True)
    answer = requests.get(f"{stream_server.url}/events/{exchange}", headers=VIEWER, timeout=10)
    assert error_of_json(answer) == (409, "precondition_failed")
    assert "Retry-After" not in answer.headers


def test_rpc_requests_are_never_shown_to_viewers(stream_server, exchanges):
    """An AMQP caller's request published to a broadcast exchange is no broadcast event."""
    live, kept = exchanges(), exchanges(history=True)
    for exchange in (live, kept):
        with open_stream(stream_server, exchange) as stream:
            ready(stream)
            broker.wait_for_bindings(exchange, lambda queues: len(queues) >= 1)
            with amqp.channel() as channel:
                request = pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1")
                channel.basic_publish(exchange, "echo", b"a request", request)
            broadcast(stream_server, exchange, "a broadcast")
            assert bodies(stream.events("message")) == ["a broadcast"]
        with open_stream(stream_server, exchange) as replay:  # nor replayed from the history
            events = replay.events("message") if exchange == kept else []
            assert bodies(events) == (["a broadcast"] if exchange == kept else [])
            ready(replay)


# --- live-only exchanges, fan-out, slow clients ------------------------------------------------------------


def test_a_live_only_exchange_replays_nothing_and_binds_no_stream(stream_server, exchange):
    assert broadcast(stream_server, exchange, "before")["routed"] is False
    with open_stream(stream_server, exchange) as stream:
        start = ready(stream)
        assert (start.json["history"], start.json["replayed"]) == (False, 0)
        broker.wait_for_bindings(exchange, lambda queues: len(queues) >= 1)
        broadcast(stream_server, exchange, "after")
        [event] = stream.events("message")
        assert event.json["body"] == "after" and event.id.startswith("~")
    assert HistoryPolicy.queue(exchange) not in broker.bound_queues(exchange)


def test_many_streams_share_one_consumer_per_event_server(stream_server, history_exchange):
    exchange = history_exchange
    streams = []
    try:
        for _ in range(30):
            streams.append(open_stream(stream_server, exchange))
        processes = {ready(stream).json["process"] for stream in streams}
        stream_queue = HistoryPolicy.queue(exchange)
        facts = broker.queue_facts({stream_queue})
        assert facts[stream_queue]["consumers"] == len(processes)  # one per process, never one per stream
        broadcast(stream_server, exchange, "to everyone")
        for stream in streams:
            assert bodies(stream.events("message")) == ["to everyone"]
    finally:
        for stream in streams:
            stream.close()


def dechunk(raw):
    """The body of a raw chunked HTTP response that may stop anywhere (complete chunks only)."""
    _head, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while b"\r\n" in rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0 or len(rest) < size:
            body += rest[:size]
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return body.decode("utf-8", "replace").replace("\r\n", "\n")


def complete_events(text):
    blocks = text.split("\n\n")[:-1]  # the last block may be cut short
    return [event for event in map(parse_block, blocks) if event is not None]


def test_a_slow_client_is_cut_off_and_resumes_while_the_others_keep_up(stream_server, history_exchange):
    exchange = history_exchange
    path = f"{PREFIX}/events/{exchange}"
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing, buffers little
    slow.connect(("127.0.0.1", stream_server.port))
    slow.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {VIEWER['Authorization']}\r\n\r\n".encode()
    )
    sent = 300  # 60 KB each, ~18 MB: far more than the buffers between a stalled reader and its server
    fast = open_stream(stream_server, exchange, timeout=60)
    ready(fast)
    numbers = []

    def read_all():
        while len(numbers) < sent:
            numbers.append(int(fast.events("message", timeout=60)[0].json["body"][:4]))

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    time.sleep(0.5)  # the slow stream is attached too
    for n in range(sent):
        broadcast(stream_server, exchange, f"{n:04d} " + "y" * 60_000)
    reader.join(120)
    fast.close()
    assert numbers == list(range(sent))  # the fast reader got everything, in order

    # the slow one was cut off: reading now, its stream ends (no closing event) before the last message
    slow.settimeout(30)
    raw = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := slow.recv(1 << 20):
            raw += chunk
    slow.close()
    assert raw.startswith(b"HTTP/1.1 200")
    events = complete_events(dechunk(raw))
    messages = [event for event in events if event.event == "message"]
    assert "closing" not in {event.event for event in events}
    assert 0 < len(messages) < sent
    last = messages[-1]
    assert [int(event.json["body"][:4]) for event in messages] == list(range(len(messages)))
    # and resumes from its last complete event with exactly the rest
    with open_stream(
        stream_server, exchange, headers={**VIEWER, "Last-Event-ID": last.id}, timeout=60
    ) as again:
        rest = []
        while (event := again.wait_for(lambda e: e.event in ("message", "ready"), 60)).event == "message":
            rest.append(int(event.json["body"][:4]))
    assert rest == list(range(len(messages), sent))


# --- heartbeats, lifetime, shutdown ------------------------------------------------------------------------


def test_an_idle_stream_sends_heartbeats(stream_server, exchange):
    with open_stream(stream_server, exchange) as stream:
        ready(stream)
        beat = stream.wait_for(lambda event: event.comment == "heartbeat", timeout=10)
        assert beat.data == ""  # a comment: the browser dispatches nothing


@pytest.fixture(scope="module")
def short_lived():
    """A gateway whose streams live 3 s (lifetime.ini)."""
    server = start_server("lifetime.ini")
    yield server
    server.stop()
    server.cleanup()


def test_a_stream_ends_by_itself_at_the_maximum_lifetime(short_lived, exchange):
    started = time.monotonic()
    with open_stream(short_lived, exchange) as stream:
        closing = stream.wait_for(lambda event: event.event == "closing", timeout=15)
        assert closing.json["reason"] == "max_lifetime"
        assert stream.next_event(5) is None and not stream.cut  # a clean end of the chunked body
    assert time.monotonic() - started < 3 + 5  # about events_max_lifetime, never much past it


def test_streams_end_with_closing_when_an_event_server_stops_and_it_is_restarted(stream_server, exchange):
    before = event_server_pids(stream_server)
    assert len(before) == 2
    streams = [open_stream(stream_server, exchange) for _ in range(6)]
    try:
        by_process = {}
        for stream in streams:
            by_process.setdefault(ready(stream).json["process"], []).append(stream)
        pid, victims = next(iter(by_process.items()))
        os.kill(pid, signal.SIGTERM)
        for stream in victims:
            closing = stream.wait_for(lambda event: event.event == "closing", timeout=10)
            assert closing.json["reason"] == "shutdown"
            assert stream.next_event(5) is None and not stream.cut
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 30
    while len(now := event_server_pids(stream_server)) < 2 or pid in now:
        assert time.monotonic() < deadline, f"the stopped event server was not restarted: {now}"
        time.sleep(0.2)
    with open_stream(stream_server, exchange) as again:
        ready(again)
