"""HTTP responders end to end: an HTTP client's ``POST /rpc/...`` (WebTest over the real stack) and
a plain AMQP caller (pika, direct reply-to) reach an HTTP service (a real aiohttp server) through
RabbitMQ and a real delivery process; a private Redis holds the responders."""

import json
import time
import uuid

import pika
import pytest

from harness.push import wait_for

from .conftest import AMQP_URL


@pytest.fixture
def client(push_client):
    return push_client


@pytest.fixture
def responder(client, unique_name, delivery):
    made = []

    def make(url, concurrency=4):
        exchange, routing_key = unique_name("resp"), "svc"
        created = client.put_json(
            f"/rpc/{exchange}/{routing_key}/responder", {"url": url, "concurrency": concurrency}
        )
        assert created.status_int == 201
        made.append((exchange, routing_key))

        def bound():  # the delivery process binds the queue within its poll
            answer = client.post(f"/rpc/{exchange}/{routing_key}", b"ping", expect_errors=True)
            return b'"no_responder"' not in answer.body

        wait_for(bound, interval=0.2, timeout=15, what="the delivery process binding the responder queue")
        return exchange, routing_key, created.json["secret"]

    yield make
    for exchange, routing_key in made:
        client.delete(f"/rpc/{exchange}/{routing_key}/responder", expect_errors=True)


def test_the_api(client, unique_name, receivers):
    path = f"/rpc/{unique_name('resp')}/svc/responder"
    url = receivers(lambda received, count: 200).url
    created = client.put_json(path, {"url": url})
    assert created.status_int == 201 and created.json["secret"].startswith("whsec_")
    updated = client.put_json(path, {"url": url, "concurrency": 2})
    assert updated.status_int == 200 and "secret" not in updated.json
    shown = client.get(path).json
    assert shown["concurrency"] == 2 and "secret" not in shown and shown["delivered"] == 0
    assert client.delete(path).status_int == 204
    assert client.delete(path, status=404).json["error"] == "no_subscription"
    assert client.get(path, status=404).json["error"] == "no_subscription"
    bad = client.put_json(path, {"url": url, "retry_schedule": [1]}, status=400)
    assert bad.json["error"] == "invalid_subscription"
    refused = client.put_json(path, {"url": "https://10.0.0.1/"}, status=400)
    assert refused.json["error"] == "target_refused"


def test_an_http_call_is_answered_by_the_http_service(client, responder, receivers):
    def answer(received, count):
        return 201

    http = receivers(answer)
    exchange, routing_key, secret = responder(http.url)
    before = len(http.requests)
    reply = client.post(
        f"/rpc/{exchange}/{routing_key}",
        b'{"q": 1}',
        headers={"Content-Type": "application/json", "X-Timeout": "3", "X-Correlation-Id": "c-1"},
    )
    assert reply.status_int == 201 and reply.body == b"ok"
    received = http.requests[before]
    headers = {name.lower(): value for name, value in received.headers.items()}
    assert received.body == b'{"q": 1}' and headers["content-type"] == "application/json"
    assert 0 < int(headers["x-timeout"]) <= 3000
    assert "webhook-id" in headers and http.unverified([secret]) == []


def test_a_failing_service_is_a_502_and_its_statuses_pass_through(client, responder, receivers):
    http = receivers(lambda received, count: 503)
    exchange, routing_key, _ = responder(http.url)
    assert client.post(f"/rpc/{exchange}/{routing_key}", b"x", status=503).body == b"no"
    http.down()
    refused = client.post(f"/rpc/{exchange}/{routing_key}", b"x", status=502)
    assert refused.json["error"] == "bad_gateway"
    wait_for(
        lambda: client.get(f"/rpc/{exchange}/{routing_key}/responder").json["last_failure"],
        what="the failure",
    )


def amqp_call(exchange, routing_key, body, expiration_ms, wait=5.0):
    """The seed's AMQP caller: a request with reply_to (direct reply-to) and an expiration."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        replies = []
        channel.basic_consume(
            "amq.rabbitmq.reply-to", lambda ch, m, p, b: replies.append((p, b)), auto_ack=True
        )
        correlation_id = uuid.uuid4().hex
        properties = pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to",
            correlation_id=correlation_id,
            expiration=str(expiration_ms),
            timestamp=int(time.time()),
            content_type="text/plain",
        )
        channel.basic_publish(exchange, routing_key, body, properties)
        deadline = time.monotonic() + wait
        while not replies and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        assert replies, "no reply"
        (reply_properties, reply_body), *_ = replies
        assert reply_properties.correlation_id == correlation_id
        return reply_properties, reply_body
    finally:
        connection.close()


def test_an_amqp_caller_reaches_the_http_service(client, responder, receivers):
    http = receivers(lambda received, count: 200)
    exchange, routing_key, _ = responder(http.url)
    properties, body = amqp_call(exchange, routing_key, b"hello", expiration_ms=3000)
    assert body == b"ok" and properties.headers["http_status"] == 200
    assert properties.content_type.startswith("text/plain")


def test_a_service_slower_than_the_time_left_is_a_504(client, responder, receivers):
    http = receivers(lambda received, count: ("sleep", 2.0, 200))
    exchange, routing_key, _ = responder(http.url)
    properties, body = amqp_call(exchange, routing_key, b"slow", expiration_ms=500, wait=5)
    assert properties.headers["http_status"] == 504
    assert json.loads(body)["error"] == "timeout"
    x_timeout = int(http.requests[-1].headers["X-Timeout"])
    assert 0 < x_timeout <= 500
