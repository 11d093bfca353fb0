"""Reading the broker's channel-close reasons: which queue type a clashing declare found."""

import pika.exceptions
import pytest

from hutch.amqp.outcomes import existing_queue_type


def closed(code, text):
    return pika.exceptions.ChannelClosedByBroker(code, text)


# what RabbitMQ 3.10 answers a typed declare of an existing queue (captured from the real broker)
CLASHES = [
    (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
        "received 'classic' but current is 'quorum'",
        "quorum",
    ),
    (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
        "received 'quorum' but current is 'classic'",
        "classic",
    ),
    (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
        "received the value 'quorum' of type 'longstr' but current is none",
        "classic",
    ),
    (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
        "received none but current is the value 'quorum' of type 'longstr'",
        "quorum",
    ),
    (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
        "received 'quorum' but current is 'stream'",
        "stream",
    ),
]


@pytest.mark.parametrize(("text", "queue_type"), CLASHES)
def test_the_existing_type_is_read_from_the_406(text, queue_type):
    assert existing_queue_type(closed(406, text)) == queue_type


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'n.c' in vhost '/': "
            "received 'true' but current is 'false'",
        ),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'n.c' in vhost '/': "
            "received none but current is the value '10' of type 'signedint'",
        ),
        (404, "NOT_FOUND - no queue 'n.c' in vhost '/'"),
        (405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'n.c' in vhost '/'"),
    ],
)
def test_any_other_refusal_is_not_a_type_clash(code, text):
    assert existing_queue_type(closed(code, text)) is None


def test_a_queue_named_like_the_clash_does_not_fool_it():
    text = (
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue "
        "'x-queue-type but current is none' in vhost '/': received 'true' but current is 'false'"
    )
    assert existing_queue_type(closed(406, text)) is None
