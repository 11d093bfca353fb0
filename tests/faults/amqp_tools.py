"""Looking at a broker from the side, with pika: what reached a queue, and cleaning up."""

import contextlib
import time

import pika
import pika.exceptions

SHARED_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def delete_exchange_and_queues(amqp_url, exchange, suffixes=("sink", "echo", "svc")):
    """Remove a test's exchange and the queues named ``{exchange}.{suffix}``; best effort."""
    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            for suffix in suffixes:
                connection.channel().queue_delete(f"{exchange}.{suffix}")
            connection.channel().exchange_delete(exchange)
        finally:
            connection.close()


def drain_message_ids(amqp_url, queue, timeout=60.0):
    """Every message_id in ``queue`` (repeats included), consuming it until it stays empty."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        expected = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=1000)
        ids = []
        deadline = time.monotonic() + timeout
        for method, properties, _body in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
            if method is not None:
                ids.append(properties.message_id)
            elif len(ids) >= expected:
                break  # a second of quiet after the count the broker reported
            if time.monotonic() > deadline:
                raise AssertionError(f"drained {len(ids)} of {expected} messages in {timeout:g} s")
        channel.cancel()
        return ids
    finally:
        connection.close()
