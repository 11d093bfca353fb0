"""The gateway's side of a subscription's queues: dead letters listed, redelivered, dropped.

These run in a request thread on a short-lived blocking pika connection of
their own: they are rare, operator-driven calls, and keeping them off the
gateway's shared connection keeps a large redelivery from delaying
publishes.

Listing is ``basic.get`` without acks on one channel, then closing that
channel: the classic dead-letter queue puts every message back in its
original place, so a listing neither removes nor reorders (two listings at
the same moment each see the messages the other does not hold).
Redelivering takes each dead letter, publishes it (confirmed) to the work
queue as a first attempt, then acks it.  Dropping purges the queue.
"""

import base64
import contextlib
import logging

import pika
from pika.exceptions import AMQPError, ChannelClosedByBroker

from hutch.delivery import topology
from hutch.errors import BrokerUnavailable, NoSubscription

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connection(settings):
    """A blocking connection to the first node of ``amqp_url`` that answers."""
    last = None
    for url in settings.amqp_url:
        parameters = pika.URLParameters(url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = settings.connect_timeout
        parameters.blocked_connection_timeout = settings.publish_timeout
        parameters.client_properties = {"connection_name": "hutch gateway (push administration)"}
        try:
            opened = pika.BlockingConnection(parameters)
        except AMQPError as error:
            last = error
            continue
        try:
            yield opened
        except ChannelClosedByBroker as error:
            if error.reply_code == 404:
                raise NoSubscription(
                    "This consumer has no dead-letter queue (it was never pushed)."
                ) from None
            raise BrokerUnavailable(f"The broker refused: {error.reply_text}.") from None
        except AMQPError as error:
            raise BrokerUnavailable(f"The broker connection failed: {error!r}.") from None
        finally:
            with contextlib.suppress(Exception):
                opened.close()
        return
    raise BrokerUnavailable(f"No broker node answered: {last!r}.")


def declare_dead_queue(settings, work_queue):
    with connection(settings) as opened:
        channel = opened.channel()
        channel.queue_declare(
            topology.dead_queue(work_queue), durable=True, arguments=topology.DEAD_ARGUMENTS
        )


def count(settings, work_queue):
    """How many dead letters the queue holds (None when it does not exist yet)."""
    try:
        with connection(settings) as opened:
            channel = opened.channel()
            return channel.queue_declare(topology.dead_queue(work_queue), passive=True).method.message_count
    except NoSubscription:
        return None


def consumers(settings, work_queue):
    """How many consumers the work queue has, delivery processes included (None: no such queue)."""
    try:
        with connection(settings) as opened:
            return opened.channel().queue_declare(work_queue, passive=True).method.consumer_count
    except NoSubscription:
        return None


def describe(properties, body):
    headers = properties.headers or {}
    entry = {"message_id": properties.message_id, "attempts": headers.get(topology.ATTEMPTS)}
    if topology.LAST_STATUS in headers:
        entry["last_status"] = headers[topology.LAST_STATUS]
    else:
        entry["last_error"] = _text(headers.get(topology.LAST_ERROR))
    entry.update(
        dead_at=_text(headers.get(topology.DEAD_AT)),
        content_type=properties.content_type,
        size=len(body),
        body_base64=base64.b64encode(body).decode("ascii"),
    )
    return entry


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def listing(settings, work_queue, limit):
    """The oldest ``limit`` dead letters, left where they are."""
    queue = topology.dead_queue(work_queue)
    entries = []
    with connection(settings) as opened:
        channel = opened.channel()
        channel.queue_declare(queue, passive=True)
        for _ in range(limit):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            entries.append(describe(properties, body))
        channel.close()  # every message taken goes back to its place
    return entries


def redeliver(settings, work_queue):
    """Move every dead letter back to the work queue as a first attempt; how many moved."""
    queue = topology.dead_queue(work_queue)
    moved = 0
    with connection(settings) as opened:
        channel = opened.channel()
        channel.queue_declare(queue, passive=True)
        channel.confirm_delivery()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            properties.headers = topology.user_headers(properties.headers) or None
            properties.delivery_mode = pika.DeliveryMode.Persistent.value
            channel.basic_publish("", work_queue, body, properties, mandatory=True)  # raises unless confirmed
            channel.basic_ack(method.delivery_tag)
            moved += 1
    return moved


def drop(settings, work_queue):
    with connection(settings) as opened:
        channel = opened.channel()
        return channel.queue_purge(topology.dead_queue(work_queue)).method.message_count
