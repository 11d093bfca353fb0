"""POST /notify/{exchange} and PUT /notify/{exchange}/queues/{consumer} against the real RabbitMQ."""

import threading

import pytest
import webtest

pytestmark = pytest.mark.broker


def register(client, amqp, exchange, consumer="archive", status=201):
    queue = f"{exchange}.{consumer}"
    amqp.track(queues=[queue])
    response = client.put(f"/notify/{exchange}/queues/{consumer}", status=status)
    return queue, response


def test_unroutable_is_409_and_nothing_is_stored(client, amqp, exchange):
    response = client.post(f"/notify/{exchange}", b"lost?", status=409)
    assert response.json["error"] == "unroutable"
    # The exchange now exists (declared as the seed does); a durable re-declare matches it.
    amqp.declare_exchange(exchange, "fanout", durable=True, auto_delete=False)


def test_register_is_201_then_200(client, amqp, exchange):
    queue, response = register(client, amqp, exchange, status=201)
    assert response.json == {"exchange": exchange, "queue": queue, "created": True, "queue_type": "classic"}
    _, again = register(client, amqp, exchange, status=200)
    assert again.json == {"exchange": exchange, "queue": queue, "created": False, "queue_type": "classic"}
    # durable, not exclusive, not auto-delete: a matching declare passes, another one fails.
    amqp.declare_queue(queue, durable=True)


def test_confirmed_message_is_persistent_in_the_durable_queue(client, amqp, exchange):
    queue, _ = register(client, amqp, exchange)
    response = client.post(
        f"/notify/{exchange}",
        b"record 1",
        headers={"Content-Type": "text/plain", "Idempotency-Key": "rec-1", "X-Amqp-Header-Source": "lab"},
        status=202,
    )
    assert response.json == {"message_id": "rec-1", "exchange": exchange}
    properties, body = amqp.get(queue)
    assert body == b"record 1"
    assert properties.delivery_mode == 2
    assert properties.message_id == "rec-1"
    assert properties.content_type == "text/plain"
    assert properties.headers == {"source": "lab"}


def test_every_consumer_queue_gets_a_copy(client, amqp, exchange):
    first, _ = register(client, amqp, exchange, "billing")
    second, _ = register(client, amqp, exchange, "audit")
    client.post(f"/notify/{exchange}", b"invoice", status=202)
    assert amqp.get(first)[1] == b"invoice"
    assert amqp.get(second)[1] == b"invoice"


def test_exchange_of_another_type_is_409_and_the_gateway_stays_healthy(client, amqp, exchange, unique_name):
    amqp.declare_exchange(exchange, "direct")
    assert client.post(f"/notify/{exchange}", b"x", status=409).json["error"] == "precondition_failed"
    assert client.put(f"/notify/{exchange}/queues/c", status=409).json["error"] == "precondition_failed"
    other = unique_name()
    amqp.track(exchanges=[other])
    queue, _ = register(client, amqp, other)
    client.post(f"/notify/{other}", b"still fine", status=202)
    assert amqp.get(queue)[1] == b"still fine"
    assert client.get("/health").json == {"broker": "ok"}


def test_transient_exchange_of_the_same_name_is_409(client, amqp, exchange):
    amqp.declare_exchange(exchange, "fanout", durable=False, auto_delete=True)
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)  # keeps the auto_delete exchange alive
    assert client.post(f"/notify/{exchange}", b"x", status=409).json["error"] == "precondition_failed"
    assert amqp.queue_depth(queue) == 0


def test_consumer_name_is_checked(client, exchange):
    assert client.put(f"/notify/{exchange}/queues/bad%20name", status=400).json["error"] == "invalid_name"
    assert client.put(f"/notify/{exchange}/queues/amq.c", status=403).json["error"] == "reserved_name"


def test_longest_names_make_a_255_character_queue(client, amqp, unique_name):
    exchange, consumer = unique_name().ljust(127, "n"), "c" * 127
    amqp.track(exchanges=[exchange])
    queue, _ = register(client, amqp, exchange, consumer)
    assert len(queue) == 255
    client.post(f"/notify/{exchange}", b"long", status=202)
    assert amqp.get(queue)[1] == b"long"


def test_queue_that_exists_transient_is_409(client, amqp, exchange):
    queue = amqp.declare_queue(f"{exchange}.c", durable=False, auto_delete=False)
    response = client.put(f"/notify/{exchange}/queues/c", status=409)
    assert response.json["error"] == "precondition_failed"
    assert amqp.queue_depth(queue) == 0


def test_exchange_deleted_behind_the_gateways_back(client, amqp, exchange):
    queue, _ = register(client, amqp, exchange)
    client.post(f"/notify/{exchange}", b"before", status=202)
    amqp.delete_exchange(exchange)
    # Declared again, but nothing is bound to the new exchange: an error, never a silent 202.
    assert client.post(f"/notify/{exchange}", b"after", status=409).json["error"] == "unroutable"
    assert amqp.get(queue)[1] == b"before"
    assert amqp.queue_depth(queue) == 0


def test_concurrent_publishes_are_each_confirmed(gateway_app, amqp, exchange):
    client = webtest.TestApp(gateway_app, lint=True)
    queue, _ = register(client, amqp, exchange)
    statuses = {}

    def publish(number):
        response = webtest.TestApp(gateway_app, lint=True).post(
            f"/notify/{exchange}", b"n", headers={"Idempotency-Key": f"k{number}"}, expect_errors=True
        )
        statuses[number] = response.status_int

    threads = [threading.Thread(target=publish, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not [thread for thread in threads if thread.is_alive()]
    assert statuses == dict.fromkeys(range(20), 202)
    assert amqp.queue_depth(queue) == 20
    ids = {amqp.get(queue)[0].message_id for _ in range(20)}
    assert ids == {f"k{number}" for number in range(20)}
