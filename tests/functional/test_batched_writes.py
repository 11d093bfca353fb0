"""hutch.amqp.connection.BatchingConnection against the real RabbitMQ.

The transport's ``write`` is wrapped to count the writes; the bytes still go
to the broker, and the test reads the messages back.
"""

import pika

from hutch.amqp.connection import BatchingConnection

from .helpers import AMQP_URL

LIMIT = 10  # seconds the I/O loop may run before the test gives up


def publish(queue, batches):
    """Publish ``batches`` (lists of bodies; None: outside any batch); return the writes per batch."""
    writes_per_batch = []
    failures = []

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        connection = channel.connection
        transport = connection._transport
        writes = []
        original = transport.write

        def recording(data):
            writes.append(data)
            original(data)

        transport.write = recording
        try:
            for batched, bodies in batches:
                before = len(writes)
                if batched:
                    with connection.batched_writes(), connection.batched_writes():  # nested: one batch
                        for body in bodies:
                            channel.basic_publish("", queue, body)
                else:
                    for body in bodies:
                        channel.basic_publish("", queue, body)
                writes_per_batch.append(len(writes) - before)
        except Exception as error:  # fail the test, not the I/O loop
            failures.append(error)
        connection.close()

    connection = BatchingConnection(
        pika.URLParameters(AMQP_URL),
        on_open_callback=on_open,
        on_open_error_callback=lambda c, error: (failures.append(error), c.ioloop.stop()),
        on_close_callback=lambda c, reason: c.ioloop.stop(),
    )
    connection.ioloop.call_later(LIMIT, connection.ioloop.stop)
    connection.ioloop.start()
    assert not failures, failures
    return writes_per_batch


def bodies_in(amqp, queue, count):
    return [amqp.get(queue)[1] for _ in range(count)]


def test_a_batch_of_publishes_leaves_in_one_write_in_order(amqp, unique_name):
    queue = amqp.declare_queue(unique_name("batch"))
    bodies = [f"message {number}".encode() for number in range(5)]

    assert publish(queue, [(True, bodies)]) == [1]
    assert bodies_in(amqp, queue, 5) == bodies
    assert amqp.queue_depth(queue) == 0


def test_outside_a_batch_pika_writes_every_frame_on_its_own(amqp, unique_name):
    """What the class is for: a publish is three frames, method, header and body."""
    queue = amqp.declare_queue(unique_name("batch"))

    assert publish(queue, [(False, [b"one", b"two"])]) == [6]
    assert bodies_in(amqp, queue, 2) == [b"one", b"two"]


def test_writes_after_a_batch_go_out_unbatched_again(amqp, unique_name):
    queue = amqp.declare_queue(unique_name("batch"))

    assert publish(queue, [(True, [b"a", b"b"]), (False, [b"c"]), (True, [])]) == [1, 3, 0]
    assert bodies_in(amqp, queue, 3) == [b"a", b"b", b"c"]
