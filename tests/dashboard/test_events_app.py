"""GET /events/{exchange} called in this process, the body read lazily as a WSGI server does:
stream limits, releasing a stream's place, an exchange that cannot be consumed, keys."""

import json
import time

import pytest
from webob import Request

from hutch.streams import hub_for
from tests.support import amqp

from . import broker
from .conftest import KEYS, bearer, browser_client
from .sse_client import parse_block


class Opened:
    """One stream as a WSGI server holds it: status, headers and the unread body."""

    def __init__(self, app, path, key="viewer", method="GET", **headers):
        if key is not None:
            headers["Authorization"] = bearer(key)
        request = Request.blank(path, method=method, headers=headers)
        self.status, self.headers, self.body = request.call_application(app)
        self.chunks = iter(self.body)

    def events(self, until, timeout=10.0):
        """Parsed blocks until ``until(event)``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = []
        for chunk in self.chunks:
            for block in chunk.decode().split("\n\n"):
                event = parse_block(block) if block else None
                if event is not None:
                    seen.append(event)
                    if until(event):
                        return seen
            assert time.monotonic() < deadline, f"not within {timeout} s: {seen}"
        raise AssertionError(f"the stream ended first: {seen}")

    def close(self):
        if hasattr(self.body, "close"):  # WSGI: call close() when the body has one
            self.body.close()


def test_a_stream_answers_with_the_event_stream_headers(stack, exchange):
    stream = Opened(stack, f"/events/{exchange}")
    try:
        assert stream.status == "200 OK"
        headers = dict(stream.headers)
        assert headers["Content-Type"].startswith("text/event-stream")
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert "Set-Cookie" not in headers  # the stream never touches the session
        events = stream.events(lambda event: event.event == "ready")
        assert events[0].retry == 2000
    finally:
        stream.close()


def test_streams_are_limited_per_process_and_closing_one_frees_its_place(make_stack, exchanges):
    app = make_stack(events_max_streams="2")
    first, second = Opened(app, f"/events/{exchanges()}"), Opened(app, f"/events/{exchanges()}")
    third = Opened(app, f"/events/{exchanges()}")
    assert third.status.startswith("503")
    assert json.loads(b"".join(third.body))["error"] == "too_many_streams"
    assert ("Retry-After", "5") in third.headers
    first.close()  # never iterated: close() alone must give the place back
    fourth = Opened(app, f"/events/{exchanges()}")
    assert fourth.status == "200 OK"
    second.close()
    fourth.close()
    assert hub_for(app.gateway).streams == 0


def test_head_opens_and_releases_a_stream(stack, exchange):
    head = Opened(stack, f"/events/{exchange}", method="HEAD")
    assert head.status == "200 OK" and list(head.chunks) == []
    head.close()
    assert exchange not in hub_for(stack.gateway).feeds or hub_for(stack.gateway).feeds[exchange].viewers == 0


def test_an_exchange_that_cannot_be_consumed_ends_the_stream_with_the_reason(stack, exchange):
    with amqp.channel() as channel:  # a notify exchange: the broadcast declare clashes (406)
        channel.exchange_declare(exchange, "fanout", durable=True, auto_delete=False)
    stream = Opened(stack, f"/events/{exchange}")
    try:
        events = stream.events(lambda event: event.event == "unavailable")
        assert events[-1].json["error"] == "precondition_failed"
        assert list(stream.chunks) == []  # then the stream ends
    finally:
        stream.close()
    # the failed feed is dropped at once, so the next viewer tries again
    assert exchange not in hub_for(stack.gateway).feeds


@pytest.mark.parametrize(("key", "status"), [(None, "401"), ("publisher", "403")])
def test_a_stream_needs_the_watch_permission(stack, exchange, key, status):
    stream = Opened(stack, f"/events/{exchange}", key=key)
    assert stream.status.startswith(status)
    stream.close()


def test_the_last_viewer_leaving_lets_the_queue_go_after_the_linger(stack, exchange):
    hub = hub_for(stack.gateway)
    stream = Opened(stack, f"/events/{exchange}")
    stream.events(lambda event: event.event == "ready")
    feed = hub.feeds[exchange]
    stream.close()
    assert hub.feeds.get(exchange) is feed  # lingering: a reconnecting browser finds its buffer
    again = Opened(stack, f"/events/{exchange}")
    again.events(lambda event: event.event == "ready")
    assert hub.feeds[exchange] is feed
    again.close()
    deadline = time.monotonic() + 5
    while exchange in hub.feeds:
        assert time.monotonic() < deadline, "the feed outlived its linger"
        time.sleep(0.05)
    assert feed.retired


@pytest.mark.filterwarnings("ignore:Invalidating corrupt session")
def test_the_dashboards_eventsource_is_authorized_by_the_session_it_logged_in_with(stack, exchange):
    browser = browser_client(stack, key=None)
    login = browser.get("/dashboard/").forms["login"]
    login["api_key"] = KEYS["viewer"][0]
    login.submit("action", value="login", status=303)
    cookie = f"hutch_session={browser.cookies['hutch_session']}"
    stream = Opened(stack, f"/events/{exchange}", key=None, Cookie=cookie)
    try:
        assert stream.status == "200 OK"
        assert "Set-Cookie" not in dict(stream.headers)  # read, never rewritten
        stream.events(lambda event: event.event == "ready")
    finally:
        stream.close()
    forged = Opened(stack, f"/events/{exchange}", key=None, Cookie="hutch_session=forged")
    assert forged.status.startswith("401")


def test_watching_again_after_the_exchange_went_away_binds_at_once(make_stack, exchange, caplog):
    app = make_stack(events_linger="0.05")
    first = Opened(app, f"/events/{exchange}")
    first.events(lambda event: event.event == "ready")
    broker.wait_for_bindings(exchange, lambda queues: len(queues) == 1)
    first.close()  # the last viewer: the queue goes, and with its binding the auto-delete exchange
    broker.wait_for_bindings(exchange, lambda queues: not queues)
    second = Opened(app, f"/events/{exchange}")
    try:
        second.events(lambda event: event.event == "ready")
        broker.wait_for_bindings(exchange, lambda queues: len(queues) == 1)
    finally:
        second.close()
    refused = [record for record in caplog.records if "consumer channel for" in record.getMessage()]
    assert refused == [], refused[0].getMessage()
