"""AMQP services answering the gateway's RPC requests, well or badly.

A ``Responder`` is a thread with its own pika ``BlockingConnection``: it
declares a direct exchange and a queue bound with the routing key (as the
legacy systems behind the gateway do), consumes with manual acks and hands
every request to ``handler(channel, method, properties, body)``, which acks
and replies as the test wants.  A handler raises ``Die`` to make the
responder vanish with the request unacknowledged.
"""

import contextlib
import logging
import threading

import pika
import pika.exceptions

from harness import amqp

log = logging.getLogger(__name__)


class Die(Exception):
    """Raised by a handler: drop the connection without acking or replying."""


def declare_service(channel, exchange, routing_key):
    """The exchange and queue a responder serves; they outlive the responder's connection."""
    queue = f"{exchange}.{routing_key}"
    channel.exchange_declare(exchange, "direct", durable=False, auto_delete=False)
    channel.queue_declare(queue, durable=False, auto_delete=False)
    channel.queue_bind(queue, exchange, routing_key)
    return queue


def reply(channel, request_properties, body, properties=None):
    """Publish a reply to the request's reply_to (the default exchange)."""
    channel.basic_publish("", request_properties.reply_to, body, properties or pika.BasicProperties())


def echo(channel, method, properties, body):
    """A well-behaved responder: copy correlation_id, answer the body back."""
    reply(
        channel,
        properties,
        body,
        pika.BasicProperties(content_type="text/plain", correlation_id=properties.correlation_id),
    )
    channel.basic_ack(method.delivery_tag)


class Responder(amqp.Responder):
    """Serve ``exchange``/``routing_key`` with ``handler`` until ``stop``.

    Unlike the well-behaved responder it extends, it acks by hand, serves a
    queue that outlives it, and with ``reconnect`` comes back after its
    connection is closed under it (the broker fault tests kill every
    connection).  ``requests`` lists the bodies of the requests it was
    handed, in order.
    """

    def __init__(self, amqp_url, exchange, routing_key, handler, reconnect=False):
        super().__init__(exchange, routing_key, handler)
        self.parameters = pika.URLParameters(amqp_url)
        self.parameters.heartbeat = 10
        self.reconnect = reconnect
        self.died = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self._serve()
            except Die:
                self.died.set()
                return
            except pika.exceptions.AMQPError as exc:
                if not self.reconnect or self.stopping.is_set():
                    log.info("responder on %s stops: %r", self.exchange, exc)
                    return
                log.info("responder on %s reconnects after %r", self.exchange, exc)
                self.stopping.wait(0.2)

    def _serve(self):
        connection = pika.BlockingConnection(self.parameters)
        try:
            channel = connection.channel()
            queue = declare_service(channel, self.exchange, self.routing_key)
            channel.basic_qos(prefetch_count=1)

            def on_request(channel, method, properties, body):
                self.requests.append(body)
                self.handler(channel, method, properties, body)

            channel.basic_consume(queue, on_request)
            self.ready.set()
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=0.1)
        finally:
            with contextlib.suppress(Exception):
                if connection.is_open:
                    connection.close()
