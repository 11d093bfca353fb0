"""Consumers of broadcast exchanges, one queue per process per exchange.

However many listeners (event streams) watch an exchange, the process
consumes it through one exclusive, auto-delete queue; the queue goes when
the last listener leaves, and every subscription is made again after a
reconnect.
"""

import logging

from .topology import BROADCAST

log = logging.getLogger(__name__)


class ExchangeConsumer:
    """The channel and queue consuming one exchange for this process."""

    def __init__(self, subscriptions, exchange):
        self.subscriptions = subscriptions
        self.exchange = exchange
        self.listeners = set()
        self.channel = None
        self.queue = None
        self.consuming = False
        self.stopped = False

    def start(self):
        topology = self.subscriptions.topology

        def declared(error):
            if error is not None:
                log.warning("cannot consume exchange %r: %s", self.exchange, error)
                for listener in list(self.listeners):
                    listener.on_error(error)
                return
            if not self.stopped:
                topology.connection.channel(on_open_callback=self._opened)

        topology.ensure_exchange(self.exchange, BROADCAST, declared)

    def _opened(self, channel):
        self.channel = channel
        if self.stopped:
            channel.close()
            return
        channel.add_on_close_callback(self._closed)
        channel.queue_declare(
            "", exclusive=True, auto_delete=True, callback=lambda frame: self._declared(frame)
        )

    def _declared(self, frame):
        self.queue = frame.method.queue
        if self.stopped:  # stopped while the declare was in flight
            self._close()
            return
        self.channel.queue_bind(self.queue, self.exchange, callback=lambda _frame: self._bound())

    def _bound(self):
        if self.stopped:
            self._close()
            return
        self.channel.basic_consume(self.queue, self._delivered, auto_ack=True)
        self.consuming = True

    def _delivered(self, channel, method, properties, body):
        for listener in list(self.listeners):
            listener.on_message(self.exchange, properties, body)

    def _closed(self, channel, reason):
        self.channel = None
        self.queue = None
        self.consuming = False
        if self.stopped or not self.subscriptions.topology.connection.is_open:
            return
        log.warning("consumer channel for %r closed: %s; consuming again", self.exchange, reason)
        self.subscriptions.topology.forget(self.exchange)
        self.subscriptions.topology.connection.ioloop.call_later(1.0, self._restart)

    def _restart(self):
        if not self.stopped and self.subscriptions.topology.connection.is_open:
            self.start()

    def stop(self):
        """Stop consuming; while a declare or bind is in flight, its callback finishes the job."""
        self.stopped = True
        if self.consuming:
            self._close()

    def _close(self):
        """Delete the queue (one that never had a consumer is not auto-deleted), then the channel."""
        channel = self.channel
        if channel is None or not channel.is_open:
            return
        if self.queue is None:
            channel.close()
            return
        channel.queue_delete(self.queue, callback=lambda _frame: channel.is_open and channel.close())


class Subscriptions:
    """All exchange consumers of one connection; lives on the I/O thread."""

    def __init__(self, topology, listeners_by_exchange):
        self.topology = topology
        self.consumers = {}
        for exchange, listeners in listeners_by_exchange.items():
            for listener in listeners:
                self.add(exchange, listener)

    def add(self, exchange, listener):
        consumer = self.consumers.get(exchange)
        if consumer is None:
            consumer = self.consumers[exchange] = ExchangeConsumer(self, exchange)
            consumer.start()
        consumer.listeners.add(listener)

    def remove(self, exchange, listener):
        consumer = self.consumers.get(exchange)
        if consumer is None:
            return
        consumer.listeners.discard(listener)
        if not consumer.listeners:
            del self.consumers[exchange]
            consumer.stop()
            # the broadcast exchange is auto-delete: it may go with our binding, so declare it next time
            self.topology.forget(exchange)
