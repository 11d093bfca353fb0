"""The tests' own AMQP side: an admin connection (plain pika); the responders are harness.amqp's.

Every wait here is bounded, so a gateway bug fails a test instead of hanging it.
"""

import time

import pika
from pika.exceptions import ChannelClosedByBroker

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F?connection_attempts=1&socket_timeout=5"
WAIT = 5.0
PUBLISHERS = ("direct", "pika")  # the two ``publisher`` settings, which must give the same answers


def connect():
    return pika.BlockingConnection(pika.URLParameters(AMQP_URL))


class AmqpAdmin:
    """Declare, inspect and delete what a test needs; deletes what it tracked on close.

    Every operation runs on a fresh channel, so a 404/406 the broker answers
    closes only that channel.
    """

    def __init__(self):
        self.connection = connect()
        self.exchanges = []
        self.queues = []

    def track(self, exchanges=(), queues=()):
        self.exchanges.extend(exchanges)
        self.queues.extend(queues)

    def _on_channel(self, operation):
        channel = self.connection.channel()
        try:
            return operation(channel)
        finally:
            if channel.is_open:
                channel.close()

    def declare_exchange(self, name, exchange_type="fanout", durable=False, auto_delete=False):
        self.track(exchanges=[name])
        self._on_channel(
            lambda ch: ch.exchange_declare(name, exchange_type, durable=durable, auto_delete=auto_delete)
        )

    def declare_queue(self, name="", exchange=None, routing_key="", **options):
        """Declare (and bind) a queue; return its name."""

        def declare(channel):
            queue = channel.queue_declare(name, **options).method.queue
            if exchange is not None:
                channel.queue_bind(queue, exchange, routing_key)
            return queue

        queue = self._on_channel(declare)
        self.track(queues=[queue])
        return queue

    def delete_exchange(self, name):
        self._on_channel(lambda ch: ch.exchange_delete(name))

    def unbind(self, queue, exchange, routing_key=""):
        self._on_channel(lambda ch: ch.queue_unbind(queue, exchange, routing_key))

    def exchange_exists(self, name):
        try:
            self._on_channel(lambda ch: ch.exchange_declare(name, passive=True))
        except ChannelClosedByBroker as error:
            if error.reply_code == 404:
                return False
            raise
        return True

    def queue_depth(self, name):
        return self._on_channel(lambda ch: ch.queue_declare(name, passive=True).method.message_count)

    def get(self, queue, timeout=WAIT):
        """The next message of ``queue`` as (properties, body); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            method, properties, body = self._on_channel(lambda ch: ch.basic_get(queue, auto_ack=True))
            if method is not None:
                return properties, body
            if time.monotonic() > deadline:
                raise AssertionError(f"no message in {queue!r} within {timeout} s")
            self.connection.sleep(0.02)

    def close(self):
        """Delete every tracked queue and exchange, then close."""
        try:
            for queue in self.queues:
                self._on_channel(lambda ch, q=queue: ch.queue_delete(q))
            for exchange in self.exchanges:
                self._on_channel(lambda ch, x=exchange: ch.exchange_delete(x))
        finally:
            self.connection.close()
