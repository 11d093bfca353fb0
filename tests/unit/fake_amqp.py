"""A fake pika connection for unit tests of the AMQP state machines, as pika's own
``tests/unit/channel_tests.py`` fakes its transport: it records what the code asks of
the broker, and the test plays the broker's side by calling the callbacks back."""

import types

import pika.exceptions
import pika.spec


class FakeIOLoop:
    """``call_later``/``remove_timeout``; a test fires a timer with ``fire``."""

    def __init__(self):
        self.timers = {}
        self.stopped = self.closed = False

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True

    def call_later(self, delay, callback):
        handle = object()
        self.timers[handle] = (delay, callback)
        return handle

    def remove_timeout(self, handle):
        self.timers.pop(handle, None)

    def fire(self, handle):
        _delay, callback = self.timers.pop(handle)
        callback()


class FakeChannel:
    """One channel: the calls made on it in ``calls``; its callbacks for the test to call."""

    def __init__(self, number):
        self.channel_number = number
        self.is_open = True
        self.calls = []
        self.on_close = []
        self.on_return = []
        self.consumer = None  # (queue, on_message) of basic_consume
        self.pending = []  # callbacks of *-ok frames not answered yet, in order

    def add_on_close_callback(self, callback):
        self.on_close.append(callback)

    def add_on_return_callback(self, callback):
        self.on_return.append(callback)

    def confirm_delivery(self, on_confirm, callback=None):
        self.calls.append(("confirm_delivery",))
        self.pending.append(callback)

    def basic_consume(self, queue, on_message, auto_ack=False, callback=None):
        self.calls.append(("basic_consume", queue, auto_ack))
        self.consumer = (queue, on_message)
        self.pending.append(callback)

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        self.calls.append(("basic_publish", exchange, routing_key, body, properties, mandatory))

    def exchange_declare(self, exchange, callback=None, **arguments):
        self.calls.append(("exchange_declare", exchange, arguments))
        self.pending.append(callback)

    def queue_declare(self, queue, callback=None, **arguments):
        self.calls.append(("queue_declare", queue, arguments))
        self.pending.append(callback)

    def queue_bind(self, queue, exchange, callback=None, **arguments):
        self.calls.append(("queue_bind", queue, exchange))
        self.pending.append(callback)

    def close(self):
        self.calls.append(("close",))
        self._closed(pika.exceptions.ChannelClosedByClient(200, "Normal shutdown"))

    # -- the broker's side ----------------------------------------------------

    def ok(self, frame=None):
        """The broker answers the oldest pending request with its ``*-ok``."""
        self.pending.pop(0)(frame)

    def deliver(self, body, **properties):
        """A message on the consumer (a reply on direct reply-to)."""
        _queue, on_message = self.consumer
        on_message(self, types.SimpleNamespace(), pika.spec.BasicProperties(**properties), body)

    def return_message(self, exchange, routing_key, body, **properties):
        method = types.SimpleNamespace(exchange=exchange, routing_key=routing_key)
        for callback in self.on_return:
            callback(self, method, pika.spec.BasicProperties(**properties), body)

    def closed_by_broker(self, code, text):
        self._closed(pika.exceptions.ChannelClosedByBroker(code, text))

    def _closed(self, reason):
        if not self.is_open:
            return
        self.is_open = False
        for callback in self.on_close:
            callback(self, reason)


class FakeConnection:
    """``channel(on_open_callback)`` hands out channels the test opens with ``open_channels``."""

    def __init__(self):
        self.ioloop = FakeIOLoop()
        self.is_open = True
        self.channels = []
        self.opening = []
        self.on_blocked = []
        self.on_unblocked = []

    def add_on_connection_blocked_callback(self, callback):
        self.on_blocked.append(callback)

    def add_on_connection_unblocked_callback(self, callback):
        self.on_unblocked.append(callback)

    def channel(self, on_open_callback):
        channel = FakeChannel(len(self.channels) + 1)
        self.channels.append(channel)
        self.opening.append((channel, on_open_callback))

    def open_channels(self):
        """The broker answers every ``Channel.Open`` asked so far."""
        opening, self.opening = self.opening, []
        for channel, on_open in opening:
            on_open(channel)
