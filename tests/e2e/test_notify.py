"""Notify over real HTTP: consumer queues, confirms, persistence, unroutable messages."""

import pika
import pika.exceptions
import pytest

from harness import amqp
from tests.e2e.client import assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


@pytest.fixture
def exchange():
    """A notify exchange name; the exchange and its consumer queues are deleted after."""
    name = amqp.unique("notify")
    queues = []
    yield name, queues
    amqp.delete(exchanges=[name], queues=queues)


def declared_as(kind_of_declare, **arguments):
    """True if declaring again with these exact arguments is accepted (a clash closes the channel)."""
    with amqp.channel() as ch:
        try:
            kind_of_declare(ch)(**arguments)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 406:
                return False
            raise
    return True


def test_unroutable_is_409_and_nothing_is_stored(api, exchange):
    name, queues = exchange
    assert_error(api.post(f"/notify/{name}", data=b"lost?"), 409, "unroutable")

    # the exchange now exists (declared as the seed does) but holds nothing for a late consumer
    queues.append(f"{name}.late")
    assert api.put(f"/notify/{name}/queues/late").status_code == 201
    assert amqp.queue_depth(f"{name}.late") == 0


def test_register_is_201_then_200_and_declares_durable_things(api, exchange):
    name, queues = exchange
    queues.append(f"{name}.billing")

    first = api.put(f"/notify/{name}/queues/billing")
    again = api.put(f"/notify/{name}/queues/billing")

    assert first.status_code == 201, first.text
    assert first.json() == {
        "exchange": name,
        "queue": f"{name}.billing",
        "created": True,
        "queue_type": "classic",
    }
    assert again.status_code == 200, again.text
    assert again.json() == {
        "exchange": name,
        "queue": f"{name}.billing",
        "created": False,
        "queue_type": "classic",
    }
    assert declared_as(lambda ch: ch.exchange_declare, exchange=name, **amqp.NOTIFY)
    assert declared_as(
        lambda ch: ch.queue_declare, queue=f"{name}.billing", durable=True, exclusive=False, auto_delete=False
    )


def test_confirmed_message_is_persistent_in_every_consumer_queue(api, exchange):
    name, queues = exchange
    for consumer in ("billing", "audit"):
        queues.append(f"{name}.{consumer}")
        assert api.put(f"/notify/{name}/queues/{consumer}").status_code == 201

    response = api.post(
        f"/notify/{name}",
        data=b'{"patient": 7}',
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": "patient-7-added",
            "X-Correlation-Id": "admission-9",
            "X-Amqp-Header-Source": "ward-3",
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"message_id": "patient-7-added", "exchange": name}
    with amqp.channel() as ch:
        for queue in queues:
            # the 202 came after the confirm: the message is already in each queue
            assert amqp.queue_depth(queue) == 1
            _method, properties, body = amqp.get_message(ch, queue, timeout=1)
            assert body == b'{"patient": 7}'
            assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
            assert properties.content_type == "application/json"
            assert properties.message_id == "patient-7-added"
            assert properties.correlation_id == "admission-9"
            assert properties.headers == {"source": "ward-3"}
            assert properties.user_id is None and properties.reply_to is None


def test_exchange_of_another_kind_is_409(api):
    name = amqp.unique("notify")
    with amqp.channel() as ch:
        ch.exchange_declare(name, **amqp.BROADCAST)  # transient: notify needs durable
        queue = ch.queue_declare("", exclusive=False, auto_delete=True).method.queue
        ch.queue_bind(queue, name)  # keeps the auto-delete exchange alive
    try:
        assert_error(api.post(f"/notify/{name}", data=b"x"), 409, "precondition_failed")
        assert_error(api.put(f"/notify/{name}/queues/billing"), 409, "precondition_failed")
        assert api.get("/health").status_code == 200
    finally:
        amqp.delete(exchanges=[name], queues=[queue, f"{name}.billing"])
