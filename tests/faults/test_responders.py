"""Responders that die mid-call, answer twice, or answer garbage.

Responders are other people's code.  Whatever they do, a call must end in
a sane HTTP response (never a 500, a hang, a split header or another call's
answer), and the gateway must go on serving the next call.  These faults do
not disturb the broker, so they run on the shared node.
"""

import datetime
import decimal
import http.client
import time

import pika
import pytest
import requests

from .amqp_tools import SHARED_AMQP_URL
from .responders import Die, Responder, echo, reply

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

GRACE = 2.0  # the broker client's extra wait beyond its own timers
MARGIN = 2.0


def call(session, url, exchange, body, timeout=2.0, routing_key="svc"):
    """POST one RPC; the HTTP timeout is far beyond the call's, so a hang fails the test."""
    return session.post(
        f"{url}/rpc/{exchange}/{routing_key}",
        data=body,
        headers={"Content-Type": "text/plain", "X-Timeout": str(timeout)},
        timeout=timeout + GRACE + 10,
    )


def test_a_responder_dying_mid_call_times_out_and_the_next_call_is_served(shared_gateway, names):
    exchange = names("dies")

    def die(channel, method, properties, body):
        raise Die  # gone with the request unacknowledged: the broker requeues it

    dying = Responder(SHARED_AMQP_URL, exchange, "svc", die).start()
    with requests.Session() as session:
        started = time.monotonic()
        response = call(session, shared_gateway.url, exchange, b"first", timeout=1.0)
        took = time.monotonic() - started
        assert dying.died.wait(5) and dying.requests == [b"first"]
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "timeout"
        assert 1.0 <= took <= 1.0 + GRACE + MARGIN, took

        healthy = Responder(SHARED_AMQP_URL, exchange, "svc", echo).start()
        try:
            response = call(session, shared_gateway.url, exchange, b"second", timeout=5.0)
        finally:
            healthy.stop()
    assert response.status_code == 200, response.text
    assert response.content == b"second"
    assert healthy.requests == [b"second"], "the dead responder's request outlived its timeout"


@pytest.mark.parametrize("copies_correlation_id", [True, False], ids=["correlated", "seed-style"])
def test_a_second_answer_never_reaches_a_later_call(shared_gateway, names, copies_correlation_id):
    exchange = names("twice")

    def answer_twice(channel, method, properties, body):
        correlation_id = properties.correlation_id if copies_correlation_id else None
        answer = pika.BasicProperties(content_type="text/plain", correlation_id=correlation_id)
        reply(channel, properties, body, answer)
        channel.basic_ack(method.delivery_tag)
        time.sleep(0.3)  # the client's next call is in flight meanwhile
        reply(channel, properties, b"again: " + body, answer)

    responder = Responder(SHARED_AMQP_URL, exchange, "svc", answer_twice).start()
    bodies = [f"call {i}".encode() for i in range(4)]
    try:
        with requests.Session() as session:
            answers = [call(session, shared_gateway.url, exchange, body) for body in bodies]
    finally:
        responder.stop()
    assert responder.requests == bodies
    assert [(a.status_code, a.content) for a in answers] == [(200, body) for body in bodies]


def test_an_answer_with_another_correlation_id_is_not_taken(shared_gateway, names):
    exchange = names("stranger")

    def answer_for_someone_else(channel, method, properties, body):
        reply(channel, properties, b"not yours", pika.BasicProperties(correlation_id="someone-else"))
        channel.basic_ack(method.delivery_tag)

    responder = Responder(SHARED_AMQP_URL, exchange, "svc", answer_for_someone_else).start()
    try:
        with requests.Session() as session:
            response = call(session, shared_gateway.url, exchange, b"mine", timeout=1.0)
    finally:
        responder.stop()
    assert response.status_code == 504, response.text


INJECTED = "\r\nSet-Cookie: hacked=1"


def case(name, status=200, **properties):
    """A reply's properties and the status the client must get."""
    return pytest.param(pika.BasicProperties(**properties), status, id=name)


GARBAGE = [
    case("status-not-a-number", headers={"http_status": "abc"}),
    case("status-out-of-range", headers={"http_status": 9999}),
    case("status-negative", headers={"http_status": -1}),
    case("status-binary", headers={"http_status": b"\xff\x00\r\n"}),
    case("status-404", 404, headers={"http_status": 404}),
    case("header-crlf", headers={"evil": "x" + INJECTED}),
    case("header-name-crlf", headers={"evil" + INJECTED: "x"}),
    case("header-non-ascii", headers={"name": "caf\u00e9 \u2603"}),
    case("header-binary", headers={"bin": b"\x00\xff\r\n\x7f"}),
    case(
        "header-structured",
        headers={
            "table": {"a": [1, b"\r\n"]},
            "list": [1, "two", None],
            "flag": True,
            "none": None,
            "when": datetime.datetime(2020, 1, 1),
            "decimal": decimal.Decimal("1.5"),
        },
    ),
    case("header-huge-value", headers={"big": "x" * 100_000}),  # a header frame must fit frame_max
    case("status-204-with-body", 204, headers={"http_status": 204}),
    case("status-304-with-body", 304, headers={"http_status": 304}),
    case("status-100", headers={"http_status": 100}),
    case("status-101", headers={"http_status": 101}),
    case("many-headers", headers={f"h{i}": str(i) for i in range(300)}),
    case("no-properties"),
    case("content-type-longest", content_type="text/plain; x=" + "y" * 241),
    case("content-type-crlf", content_type="text/plain" + INJECTED),
    case("content-type-non-latin-1", content_type="text/plain; name=\u2603"),
    case("content-type-latin-1", content_type="text/plain; name=caf\u00e9"),
    case("content-type-not-utf-8", content_type=b"text/\xff\xfe"),
    case("content-encoding-crlf", content_encoding="x-mine" + INJECTED),
]


def assert_sane(response):
    """A final status, one header per line, printable ASCII, nothing injected."""
    assert 200 <= response.status_code <= 599 and response.status_code != 500, response.status_code
    names = [name.lower() for name in response.raw.headers]
    assert "set-cookie" not in names, response.raw.headers
    for name, value in response.raw.headers.items():
        for text in (name, value):
            assert text.isascii() and text.isprintable(), (name, value)


@pytest.mark.parametrize(("properties", "status"), GARBAGE)
def test_garbage_reply_properties_give_a_sane_response(shared_gateway, names, properties, status):
    exchange = names("garbage")

    def answer(channel, method, request_properties, body):
        if body == b"garbage":
            garbage = pika.spec.BasicProperties(**vars(properties))
            garbage.correlation_id = request_properties.correlation_id
            reply(channel, request_properties, b"garbage answered", garbage)
            channel.basic_ack(method.delivery_tag)
        else:
            echo(channel, method, request_properties, body)

    responder = Responder(SHARED_AMQP_URL, exchange, "svc", answer).start()
    try:
        with requests.Session() as session:
            try:
                response = call(session, shared_gateway.url, exchange, b"garbage")
            except (requests.RequestException, http.client.HTTPException) as exc:
                pytest.fail(f"the client could not read the answer: {exc!r}")
            assert_sane(response)
            assert response.status_code == status, response.content
            expected_body = b"" if status in (204, 304) else b"garbage answered"
            if status < 300 or status == 304:
                assert response.content == expected_body
            # the same keep-alive connection must still carry a normal call
            following = call(session, shared_gateway.url, exchange, b"next")
    finally:
        responder.stop()
    assert (following.status_code, following.content) == (200, b"next")
