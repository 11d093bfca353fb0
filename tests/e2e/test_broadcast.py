"""POST /broadcast/{exchange} over real HTTP under mod_wsgi, seen by real consumers."""

import uuid

import pytest

from harness import amqp
from tests.e2e.client import assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


@pytest.fixture
def exchange():
    name = amqp.unique("bcast")
    yield name
    amqp.delete(exchanges=[name])


def test_nobody_listening_is_accepted_and_not_routed(api, exchange):
    response = api.post(f"/broadcast/{exchange}", data=b"score 1-0")

    assert response.status_code == 202
    body = response.json()
    assert body["exchange"] == exchange
    assert body["routed"] is False
    assert uuid.UUID(hex=body["message_id"])
    # declared as the seed does: transient fanout, auto-deleted
    assert amqp.exchange_exists(exchange)


def test_message_reaches_bound_consumer_with_mapped_properties(api, exchange):
    payload = bytes(range(256)) * 4
    with amqp.BoundQueue(exchange) as consumer:
        response = api.post(
            f"/broadcast/{exchange}",
            data=payload,
            headers={
                "Content-Type": "application/x-score; charset=utf-8",
                "Content-Encoding": "x-custom",
                "Idempotency-Key": "match-42-goal-3",
                "X-Correlation-Id": "corr-7",
                "X-Amqp-Header-Tenant": "acme",
                "X-Amqp-Header-Trace-Step": "3",
                # none of these may reach the message's properties
                "User-Id": "mallory",
                "Reply-To": "mallory.queue",
                "Delivery-Mode": "2",
                "X-Amqp-User-Id": "mallory",
                "X-Amqp-Reply-To": "mallory.queue",
            },
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"message_id": "match-42-goal-3", "exchange": exchange, "routed": True}

        delivered = consumer.get()
    assert delivered is not None, "the bound consumer got nothing"
    method, properties, body = delivered
    assert body == payload
    assert method.exchange == exchange
    assert properties.content_type == "application/x-score; charset=utf-8"
    assert properties.content_encoding == "x-custom"
    assert properties.message_id == "match-42-goal-3"
    assert properties.correlation_id == "corr-7"
    assert properties.headers == {"tenant": "acme", "trace-step": "3"}
    assert properties.user_id is None
    assert properties.reply_to is None
    assert properties.delivery_mode != 2  # broadcast messages are transient


def test_defaults_octet_stream_and_a_fresh_message_id(api, exchange):
    with amqp.BoundQueue(exchange) as consumer:
        first = api.post(f"/broadcast/{exchange}", data=b"a")  # requests sends no Content-Type
        second = api.post(f"/broadcast/{exchange}", data=b"b")
        messages = [consumer.get(), consumer.get()]

    assert first.status_code == second.status_code == 202
    assert first.json()["message_id"] != second.json()["message_id"]
    assert [m[1].message_id for m in messages] == [first.json()["message_id"], second.json()["message_id"]]
    assert {m[1].content_type for m in messages} == {"application/octet-stream"}
    assert all(m[1].headers in (None, {}) for m in messages)


def test_every_bound_queue_gets_its_copy(api, exchange):
    with amqp.BoundQueue(exchange) as one, amqp.BoundQueue(exchange) as two:
        response = api.post(f"/broadcast/{exchange}", data=b"fan out")
        assert response.status_code == 202 and response.json()["routed"] is True
        assert one.get()[2] == b"fan out"
        assert two.get()[2] == b"fan out"


def test_chunked_body_is_published_whole(api, exchange):
    with amqp.BoundQueue(exchange) as consumer:
        response = api.post(f"/broadcast/{exchange}", data=iter([b"chunk one, ", b"chunk two"]))
        assert response.status_code == 202, response.text
        assert consumer.get()[2] == b"chunk one, chunk two"


def test_exchange_that_went_away_is_declared_again(api, exchange):
    """An auto-delete exchange vanishes with its last binding; the next publish must still work."""
    with amqp.BoundQueue(exchange) as consumer:
        assert api.post(f"/broadcast/{exchange}", data=b"1").json()["routed"] is True
        assert consumer.get() is not None
    assert not amqp.exchange_exists(exchange)  # the binding went with the queue

    for attempt in range(4):  # reach both daemon processes' cached declarations
        response = api.post(f"/broadcast/{exchange}", data=f"again {attempt}".encode())
        assert response.status_code == 202, response.text
    with amqp.BoundQueue(exchange) as consumer:
        assert api.post(f"/broadcast/{exchange}", data=b"after").json()["routed"] is True
        assert consumer.get()[2] == b"after"


def test_exchange_of_another_type_is_409_and_the_gateway_stays_healthy(api, exchange):
    with amqp.channel() as ch:
        ch.exchange_declare(exchange, exchange_type="direct", durable=True)

    assert_error(api.post(f"/broadcast/{exchange}", data=b"x"), 409, "precondition_failed")

    other = amqp.unique("bcast")
    try:
        assert api.post(f"/broadcast/{other}", data=b"x").status_code == 202
        assert api.get("/health").json() == {"broker": "ok"}
    finally:
        amqp.delete(exchanges=[other])
