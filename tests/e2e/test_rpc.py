"""POST /rpc/{exchange}/{routing_key} over real HTTP, answered by real pika responders."""

import concurrent.futures
import time

import pytest

from harness import amqp
from tests.e2e.client import RPC_MAX_TIMEOUT, assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


@pytest.fixture
def names():
    exchange = amqp.unique("rpc")
    yield exchange, "lookup"
    amqp.delete(exchanges=[exchange])


def test_echo_reply_becomes_the_response(api, names):
    exchange, key = names
    with amqp.Responder(exchange, key) as responder:
        response = api.post(
            f"/rpc/{exchange}/{key}",
            data=b'{"id": 1}',
            headers={
                "Content-Type": "application/json",
                "X-Correlation-Id": "client-chosen",
                "Idempotency-Key": "call-1",
                "X-Amqp-Header-Locale": "fr",
            },
        )

    assert response.status_code == 200, response.text
    assert response.content == b'{"id": 1}'
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Amqp-Header-locale"] == "fr"  # the echoed header maps back
    [(request, body)] = responder.requests
    assert body == b'{"id": 1}'
    assert request.message_id == "call-1"
    assert request.correlation_id not in (None, "client-chosen")  # RPC sets its own
    assert request.reply_to.startswith("amq.rabbitmq.reply-to")
    assert request.expiration == "2000"  # rpc_timeout = 2 in test.ini
    assert request.user_id is None
    assert request.headers == {"locale": "fr"}


def test_reply_header_http_status_sets_the_status(api, names):
    exchange, key = names

    def created(properties, body):
        reply = {
            "content_type": "text/plain",
            "content_encoding": "identity",
            "headers": {"http_status": 201, "location": "/things/9", "Trace": "abc"},
        }
        return [amqp.Answer(b"made it", reply)]

    with amqp.Responder(exchange, key, handler=created):
        response = api.post(f"/rpc/{exchange}/{key}", data=b"make")

    assert response.status_code == 201, response.text
    assert response.content == b"made it"
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Encoding"] == "identity"
    assert response.headers["X-Amqp-Header-location"] == "/things/9"
    assert response.headers["X-Amqp-Header-Trace"] == "abc"
    assert not any("http_status" in name.lower().replace("-", "_") for name in response.headers)


def test_reply_status_may_be_an_error_status(api, names):
    exchange, key = names

    def not_found(properties, body):
        return [amqp.Answer(b"{}", {"content_type": "application/json", "headers": {"http_status": "404"}})]

    with amqp.Responder(exchange, key, handler=not_found):
        response = api.post(f"/rpc/{exchange}/{key}", data=b"?")
    assert response.status_code == 404
    assert response.content == b"{}"


def test_no_reply_is_504_and_the_request_expires(api, names):
    exchange, key = names
    with amqp.BoundQueue(exchange, kind=amqp.RPC, routing_key=key) as silent:
        started = time.monotonic()
        response = api.post(f"/rpc/{exchange}/{key}", data=b"anyone?", headers={"X-Timeout": "0.5"})
        waited = time.monotonic() - started

        assert_error(response, 504, "timeout")
        assert waited >= 0.5  # it did wait for the responder
        # the request sat in the responder's queue with the timeout as its expiration:
        # a responder that starts later is not served the stale call
        time.sleep(0.3)
        assert silent.get(timeout=0.2) is None


def test_x_timeout_is_capped_and_validated(api, names):
    exchange, key = names
    with amqp.Responder(exchange, key) as responder:
        assert api.post(f"/rpc/{exchange}/{key}", headers={"X-Timeout": "1000"}).status_code == 200
        assert api.post(f"/rpc/{exchange}/{key}", headers={"X-Timeout": "1.5"}).status_code == 200
        for bad in ("abc", "0", "-1", "nan", "inf"):
            assert_error(
                api.post(f"/rpc/{exchange}/{key}", headers={"X-Timeout": bad}), 400, "invalid_header"
            )
    assert [request.expiration for request, _ in responder.requests] == [str(RPC_MAX_TIMEOUT * 1000), "1500"]


def test_unbound_routing_key_is_503_no_responder_at_once(api, names):
    exchange, key = names
    with amqp.Responder(exchange, key):
        response = api.post(f"/rpc/{exchange}/nobody-home", data=b"x", headers={"X-Timeout": "10"})
    # 503 rather than the 504 that waiting out the 10 s would give
    assert_error(response, 503, "no_responder")


def test_missing_exchange_is_503_no_responder(api):
    exchange = amqp.unique("rpc")
    assert not amqp.exchange_exists(exchange)
    for _ in range(3):  # the failed publish closes a channel; the next call must not suffer
        response = api.post(f"/rpc/{exchange}/lookup", data=b"x", headers={"X-Timeout": "10"})
        assert_error(response, 503, "no_responder")
    assert not amqp.exchange_exists(exchange)  # the gateway never declares RPC exchanges


def test_seed_style_responder_without_correlation_id(api, names):
    exchange, key = names

    def upper(properties, body):
        return [amqp.Answer(body.upper(), {"content_type": "text/plain"}, correlate=False)]

    with amqp.Responder(exchange, key, handler=upper):
        for word in (b"one", b"two", b"three"):
            response = api.post(f"/rpc/{exchange}/{key}", data=word)
            assert response.status_code == 200, response.text
            assert response.content == word.upper()


def test_concurrent_calls_each_get_their_own_reply(api, names):
    exchange, key = names
    bodies = [f"call {number}".encode() for number in range(20)]
    with (
        amqp.Responder(exchange, key),
        concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool,
    ):
        responses = list(pool.map(lambda body: api.post(f"/rpc/{exchange}/{key}", data=body), bodies))
    assert [response.status_code for response in responses] == [200] * 20
    assert [response.content for response in responses] == bodies


def test_late_reply_never_reaches_a_later_call(api, names):
    """A seed-style responder answers a timed-out call late; later calls must get their own replies."""
    exchange, key = names

    def echo_late_ones_late(properties, body):
        delay = 0.8 if body.startswith(b"late") else 0
        return [amqp.Answer(body, {"content_type": "text/plain"}, delay=delay, correlate=False)]

    with amqp.Responder(exchange, key, handler=echo_late_ones_late):
        late = [
            api.post(f"/rpc/{exchange}/{key}", data=f"late {n}".encode(), headers={"X-Timeout": "0.3"})
            for n in range(2)
        ]
        for response in late:
            assert_error(response, 504, "timeout")
        # the late replies arrive while these calls run, in both daemon processes
        deadline = time.monotonic() + 2.0
        number = 0
        while time.monotonic() < deadline:
            body = f"fresh {number}".encode()
            response = api.post(f"/rpc/{exchange}/{key}", data=body)
            assert response.status_code == 200, response.text
            assert response.content == body
            number += 1
    assert number >= 2
