"""POST /broadcast/{exchange} against the real RabbitMQ."""

import pytest

pytestmark = pytest.mark.broker


def test_nobody_listening_is_202_not_routed(client, amqp, exchange):
    response = client.post(f"/broadcast/{exchange}", b"hello", content_type="text/plain", status=202)
    assert response.json["exchange"] == exchange
    assert response.json["routed"] is False
    assert response.json["message_id"]
    assert amqp.exchange_exists(exchange)


def test_bound_consumer_gets_body_and_mapped_properties(client, amqp, exchange):
    client.post(f"/broadcast/{exchange}", b"", status=202)  # declares the exchange as the seed does
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    response = client.post(
        f"/broadcast/{exchange}",
        b'{"home": 2, "away": 1}',
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "identity",
            "Idempotency-Key": "match-42",
            "X-Correlation-Id": "corr-7",
            "X-Amqp-Header-Tenant": "acme",
            "Reply-To": "somewhere",
            "User-Id": "admin",
        },
        status=202,
    )
    assert response.json == {"message_id": "match-42", "exchange": exchange, "routed": True}
    properties, body = amqp.get(queue)
    assert body == b'{"home": 2, "away": 1}'
    assert properties.content_type == "application/json"
    assert properties.content_encoding == "identity"
    assert properties.message_id == "match-42"
    assert properties.correlation_id == "corr-7"
    assert properties.headers == {"tenant": "acme"}
    assert properties.reply_to is None
    assert properties.user_id is None
    assert properties.delivery_mode in (None, 1)
    assert properties.timestamp


def test_exchange_is_declared_transient_fanout(client, amqp, exchange):
    client.post(f"/broadcast/{exchange}", b"", status=202)
    # A matching re-declare succeeds only if the gateway declared exactly this.
    amqp.declare_exchange(exchange, "fanout", durable=False, auto_delete=True)


def test_vanished_auto_delete_exchange_is_declared_again(client, amqp, exchange):
    client.post(f"/broadcast/{exchange}", b"first", status=202)
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    amqp.unbind(queue, exchange)  # last binding gone: RabbitMQ deletes the auto_delete exchange
    assert not amqp.exchange_exists(exchange)
    response = client.post(f"/broadcast/{exchange}", b"second", status=202)
    assert response.json["routed"] is False
    assert amqp.exchange_exists(exchange)
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    assert client.post(f"/broadcast/{exchange}", b"third", status=202).json["routed"] is True
    assert amqp.get(queue)[1] == b"third"


def test_exchange_of_another_type_is_409(client, amqp, exchange):
    amqp.declare_exchange(exchange, "direct")
    response = client.post(f"/broadcast/{exchange}", b"x", status=409)
    assert response.json["error"] == "precondition_failed"
