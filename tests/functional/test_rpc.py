"""POST /rpc/{exchange}/{routing_key} against the real RabbitMQ and responders of our own.

Every test runs on both paths: ``direct`` calls from the request thread on
the direct publisher's connection (``direct_rpc``: ``publisher = direct``,
the default), ``pika`` hands each call to the I/O thread (``rpc``:
``publisher = pika``).
"""

import threading

import pytest
import webtest
from paste.deploy import appconfig

from harness.amqp import Answer, Responder
from hutch.amqp.history import HistoryPolicy
from hutch.settings import parse_settings
from hutch.web.app import make_app

from .conftest import INI
from .helpers import PUBLISHERS

pytestmark = pytest.mark.broker

JOIN = 20.0


@pytest.fixture(scope="module", params=PUBLISHERS)
def gateway_app(request):
    """test.ini's stack on one RPC path; one per path (one broker client), as a process has."""
    conf = appconfig(f"config:{INI}")
    settings = parse_settings({**conf.local_conf, "publisher": request.param}, here=str(INI.parent))
    app = make_app(settings)
    assert app.gateway.broker.direct is (request.param == "direct")
    yield app
    app.gateway.broker.close()


def seed_style_echo(properties, body):
    """A reply written as the seed does: no correlation_id copied."""
    return [Answer(body, {"content_type": properties.content_type}, correlate=False)]


def test_echo_responder_answers_200(client, responder, exchange):
    service = responder(exchange, "echo")
    response = client.post(
        f"/rpc/{exchange}/echo",
        b"ping",
        headers={"Content-Type": "text/plain", "X-Correlation-Id": "mine", "X-Amqp-Header-Tenant": "acme"},
    )
    assert response.status_int == 200
    assert response.body == b"ping"
    assert response.headers["Content-Type"] == "text/plain"
    [(request, body)] = service.requests
    assert body == b"ping"
    assert request.reply_to.startswith("amq.rabbitmq.reply-to")
    assert request.correlation_id and request.correlation_id != "mine"  # RPC sets its own
    assert request.headers == {"tenant": "acme"}
    assert request.delivery_mode in (None, 1)


def test_reply_properties_map_back_to_http(client, responder, exchange):
    def answer(properties, body):
        headers = {"http_status": 201, "trace-id": "t-1", "count": 3}
        return [Answer(b'{"id": 7}', {"content_type": "application/json", "headers": headers})]

    responder(exchange, "create", answer)
    response = client.post(f"/rpc/{exchange}/create", b"{}", content_type="application/json", status=201)
    assert response.json == {"id": 7}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Amqp-Header-trace-id"] == "t-1"
    assert response.headers["X-Amqp-Header-count"] == "3"
    assert not [name for name in response.headers if "http_status" in name.lower()]


@pytest.mark.parametrize(("asked", "status"), [(404, 404), ("503", 503), (599, 599), (600, 200), ("x", 200)])
def test_http_status_header_sets_the_status(client, responder, exchange, asked, status):
    responder(exchange, "s", lambda properties, body: [Answer(b"r", {"headers": {"http_status": asked}})])
    response = client.post(f"/rpc/{exchange}/s", b"", status=status)
    assert response.body == b"r"


def test_http_status_204_sends_no_body(client, responder, exchange):
    responder(exchange, "s", lambda properties, body: [Answer(b"ignored", {"headers": {"http_status": 204}})])
    response = client.post(f"/rpc/{exchange}/s", b"", status=204)
    assert response.body == b""


def test_responder_content_type_cannot_split_headers(client, responder, exchange):
    responder(
        exchange, "s", lambda properties, body: [Answer(b"r", {"content_type": "text/plain\r\nX-Evil: 1"})]
    )
    response = client.post(f"/rpc/{exchange}/s", b"")
    assert "X-Evil" not in response.headers


def test_seed_style_responder_without_correlation_id(client, responder, exchange):
    responder(exchange, "seed", seed_style_echo)
    assert client.post(f"/rpc/{exchange}/seed", b"hello", content_type="text/plain").body == b"hello"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "-0.5", "nan", "inf", "", "1s", "0x10"])
def test_invalid_x_timeout_is_400(client, responder, exchange, value):
    responder(exchange, "t")
    response = client.post(f"/rpc/{exchange}/t", b"", headers={"X-Timeout": value}, status=400)
    assert response.json["error"] == "invalid_header"


def expiration_echo(properties, body):
    return [Answer(properties.expiration.encode())]


@pytest.mark.parametrize(("header", "expiration"), [(None, b"2000"), ("1.5", b"1500"), ("1000", b"4000")])
def test_x_timeout_sets_the_expiration_capped_at_rpc_max_timeout(
    client, responder, exchange, settings, header, expiration
):
    assert (settings.rpc_timeout, settings.rpc_max_timeout) == (2.0, 4.0)  # test.ini
    responder(exchange, "t", expiration_echo)
    headers = {} if header is None else {"X-Timeout": header}
    assert client.post(f"/rpc/{exchange}/t", b"", headers=headers).body == expiration


def test_silent_responder_is_504(client, amqp, exchange):
    amqp.declare_exchange(exchange, "direct")
    amqp.declare_queue(exchange=exchange, routing_key="slow", exclusive=True)  # bound, never consumed
    response = client.post(f"/rpc/{exchange}/slow", b"", headers={"X-Timeout": "0.3"}, status=504)
    assert response.json["error"] == "timeout"


def test_unbound_routing_key_is_503_no_responder(client, responder, exchange):
    responder(exchange, "bound")
    response = client.post(f"/rpc/{exchange}/unbound", b"", headers={"X-Timeout": "3"}, status=503)
    assert response.json["error"] == "no_responder"
    assert client.post(f"/rpc/{exchange}/bound", b"still here").body == b"still here"


def test_missing_exchange_is_503_no_responder_and_the_gateway_stays_healthy(
    client, responder, exchange, unique_name
):
    missing = unique_name("missing")
    response = client.post(f"/rpc/{missing}/any", b"", headers={"X-Timeout": "3"}, status=503)
    assert response.json["error"] == "no_responder"
    responder(exchange, "echo")
    assert client.post(f"/rpc/{exchange}/echo", b"after").body == b"after"
    assert client.get("/health").json == {"broker": "ok"}


def test_gateway_never_declares_the_rpc_exchange(client, amqp, unique_name):
    missing = unique_name("missing")
    amqp.track(exchanges=[missing])
    client.post(f"/rpc/{missing}/any", b"", headers={"X-Timeout": "3"}, status=503)
    assert not amqp.exchange_exists(missing)


@pytest.mark.parametrize("handler", [None, seed_style_echo], ids=["correlated", "seed-style"])
def test_concurrent_calls_each_get_their_own_reply(gateway_app, responder, exchange, handler):
    responder(exchange, "echo", handler)
    results = {}

    def call(number):
        client = webtest.TestApp(gateway_app, lint=True)
        body = f"call-{number}".encode()
        response = client.post(f"/rpc/{exchange}/echo", body, content_type="text/plain", expect_errors=True)
        results[number] = (response.status_int, response.body)

    threads = [threading.Thread(target=call, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not [thread for thread in threads if thread.is_alive()]
    assert results == {number: (200, f"call-{number}".encode()) for number in range(20)}


@pytest.mark.parametrize("correlate", [True, False], ids=["correlated", "seed-style"])
def test_late_reply_to_a_timed_out_call_never_reaches_the_next_call(client, responder, exchange, correlate):
    def slow_then_echo(properties, body):
        if body == b"slow":
            return [Answer(b"late reply", delay=0.8, correlate=correlate, blocking=True)]
        return [Answer(body, correlate=correlate)]

    service = responder(exchange, "svc", slow_then_echo)
    client.post(f"/rpc/{exchange}/svc", b"slow", headers={"X-Timeout": "0.3"}, status=504)
    # The responder is still sleeping on the first call; it answers it, then this one.
    assert client.post(f"/rpc/{exchange}/svc", b"next", headers={"X-Timeout": "4"}).body == b"next"
    assert client.post(f"/rpc/{exchange}/svc", b"third", headers={"X-Timeout": "4"}).body == b"third"
    assert [body for _, body in service.requests] == [b"slow", b"next", b"third"]


@pytest.mark.parametrize("correlate", [True, False], ids=["correlated", "seed-style"])
def test_responder_answering_twice(client, responder, exchange, correlate):
    def twice(properties, body):
        return [Answer(body + b"-1", correlate=correlate), Answer(body + b"-2", correlate=correlate)]

    responder(exchange, "twice", twice)
    for body in (b"a", b"b", b"c", b"d"):
        assert client.post(f"/rpc/{exchange}/twice", body).body == body + b"-1"


def test_rpc_names_are_checked(client, exchange):
    assert client.post(f"/rpc/{exchange}/amq.key", b"", status=403).json["error"] == "reserved_name"
    assert client.post("/rpc/amq.direct/key", b"", status=403).json["error"] == "reserved_name"
    assert client.post(f"/rpc/{exchange}/bad%2Fkey", b"", status=404).json["error"] == "not_found"
    assert client.post(f"/rpc/{exchange}/bad*key", b"", status=400).json["error"] == "invalid_name"


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_rpc_to_a_broadcast_exchange_with_history_is_no_responder_and_stores_nothing(
    make_stack, amqp, unique_name, publisher
):
    """A broadcast exchange's history stream is bound for good: a request published there would be
    stored and shown to every viewer, and never answered (504).  It is refused at once instead."""
    exchange = unique_name()
    amqp.track(exchanges=[exchange], queues=[HistoryPolicy.queue(exchange)])
    stack = make_stack(events_history=exchange, publisher=publisher)
    client = webtest.TestApp(stack, lint=True)
    assert client.post(f"/broadcast/{exchange}", b"score", status=202).json["routed"] is True
    stream = HistoryPolicy.queue(exchange)
    stored = amqp.queue_depth(stream)
    answer = client.post(f"/rpc/{exchange}/echo", b"call", headers={"X-Timeout": "5"}, status=503)
    assert answer.json["error"] == "no_responder" and "broadcast" in answer.json["detail"]
    assert amqp.queue_depth(stream) == stored
    # a direct exchange whose name matches events_history is served as ever
    called = unique_name()
    service = Responder(called, "echo").start()
    try:
        amqp.track(exchanges=[called])
        other = make_stack(events_history=f"{exchange} {called}", publisher=publisher)
        reply = webtest.TestApp(other, lint=True).post(f"/rpc/{called}/echo", b"ping", status=200)
        assert reply.body == b"ping"
    finally:
        service.stop()
