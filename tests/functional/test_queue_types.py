"""PUT /notify/{exchange}/queues/{consumer} with ``notify_queue_type``, on the shared single node.

The gateway declares the type it is configured with; a queue that exists with
the other type stays as it is (a clashing declare would be refused with 406)
and is answered 200 with its type, bound and usable.
"""

import pika
import pytest
import webtest

pytestmark = pytest.mark.broker

QUORUM = {"x-queue-type": "quorum"}
CLASSIC = {"x-queue-type": "classic"}


@pytest.fixture(params=["quorum", "classic"])
def configured(request, make_stack):
    """(queue type, a client of a gateway that declares it)."""
    stack = make_stack(notify_queue_type=request.param)
    return request.param, webtest.TestApp(stack, lint=True)


def other(queue_type):
    return "classic" if queue_type == "quorum" else "quorum"


def test_a_new_queue_gets_the_configured_type(configured, amqp, exchange):
    queue_type, client = configured
    queue = f"{exchange}.c"
    amqp.track(queues=[queue])
    created = client.put(f"/notify/{exchange}/queues/c", status=201).json
    assert created == {"exchange": exchange, "queue": queue, "created": True, "queue_type": queue_type}
    # the broker agrees: a declare of the same type passes, one of the other type is refused
    amqp.declare_queue(queue, durable=True, arguments={"x-queue-type": queue_type})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        amqp.declare_queue(queue, durable=True, arguments={"x-queue-type": other(queue_type)})
    assert refused.value.reply_code == 406
    again = client.put(f"/notify/{exchange}/queues/c", status=200).json
    assert again == {"exchange": exchange, "queue": queue, "created": False, "queue_type": queue_type}


@pytest.mark.parametrize("existing", [QUORUM, CLASSIC, None], ids=["quorum", "classic", "classic-untyped"])
def test_an_existing_queue_keeps_its_type_is_bound_and_answers_200(configured, amqp, exchange, existing):
    _queue_type, client = configured
    queue = amqp.declare_queue(f"{exchange}.c", durable=True, arguments=existing)
    existing_type = (existing or CLASSIC)["x-queue-type"]
    answer = client.put(f"/notify/{exchange}/queues/c", status=200).json
    assert answer == {"exchange": exchange, "queue": queue, "created": False, "queue_type": existing_type}
    # unchanged, and bound: a notify reaches it
    amqp.declare_queue(queue, durable=True, arguments={"x-queue-type": existing_type})
    client.post(f"/notify/{exchange}", b"kept", headers={"Idempotency-Key": "k1"}, status=202)
    properties, body = amqp.get(queue)
    assert (properties.message_id, body) == ("k1", b"kept")
    assert client.get("/health").json == {"broker": "ok"}


def test_an_existing_queue_with_other_arguments_is_409(configured, amqp, exchange):
    queue_type, client = configured
    queue = amqp.declare_queue(
        f"{exchange}.c", durable=True, arguments={"x-queue-type": queue_type, "x-max-length": 10}
    )
    assert client.put(f"/notify/{exchange}/queues/c", status=409).json["error"] == "precondition_failed"
    assert amqp.queue_depth(queue) == 0
    assert client.get("/health").json == {"broker": "ok"}


def test_a_quorum_queue_holds_confirmed_persistent_messages(make_stack, amqp, exchange):
    client = webtest.TestApp(make_stack(notify_queue_type="quorum"), lint=True)
    queue = f"{exchange}.c"
    amqp.track(queues=[queue])
    client.put(f"/notify/{exchange}/queues/c", status=201)
    for number in range(5):
        client.post(f"/notify/{exchange}", b"m", headers={"Idempotency-Key": f"q{number}"}, status=202)
    assert amqp.queue_depth(queue) == 5
    assert [amqp.get(queue)[0].message_id for _ in range(5)] == [f"q{number}" for number in range(5)]
