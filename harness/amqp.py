"""Real AMQP peers for tests: consumers, responders and cleanup, over pika.

Everything here uses its own ``BlockingConnection`` (pika connections are
not thread-safe) and every wait is bounded, so a gateway bug fails a test
instead of hanging it.
"""

import contextlib
import dataclasses
import threading
import time
import uuid

import pika
import pika.exceptions

from hutch.amqp.history import HistoryPolicy

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
BROADCAST = {"exchange_type": "fanout", "durable": False, "auto_delete": True}
NOTIFY = {"exchange_type": "fanout", "durable": True, "auto_delete": False}
RPC = {"exchange_type": "direct", "durable": False, "auto_delete": True}


def unique(prefix="x"):
    """A broker name no other test (or teammate) uses."""
    return f"t.{prefix}.{uuid.uuid4().hex[:8]}"


def connect():
    parameters = pika.URLParameters(AMQP_URL)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    parameters.blocked_connection_timeout = 10
    return pika.BlockingConnection(parameters)


@contextlib.contextmanager
def channel():
    connection = connect()
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            connection.close()


def exchange_exists(name):
    """Ask the broker, on a channel of its own (a 404 closes the channel)."""
    with channel() as ch:
        try:
            ch.exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 404:
                return False
            raise
    return True


def queue_depth(name):
    """The number of ready messages in ``name`` (None if it does not exist)."""
    with channel() as ch:
        try:
            return ch.queue_declare(name, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 404:
                return None
            raise


def delete(exchanges=(), queues=()):
    """Remove what a test created; a name that is already gone is fine.

    An exchange's history stream (``events_history``) goes with it: bound
    forever, it would keep the exchange and its messages on the shared node.
    """
    with channel() as ch:
        for queue in [*queues, *(HistoryPolicy.queue(exchange) for exchange in exchanges)]:
            ch.queue_delete(queue)
        for exchange in exchanges:
            ch.exchange_delete(exchange)


def get_message(ch, queue, timeout=5.0):
    """Poll ``queue`` until a message arrives: ``(method, properties, body)``, or None."""
    deadline = time.monotonic() + timeout
    while True:
        method, properties, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, properties, body
        if time.monotonic() >= deadline:
            return None
        ch.connection.sleep(0.02)


class BoundQueue:
    """An exclusive, server-named queue bound to ``exchange``, declared as ``kind``.

    A consumer system as the seed writes one: it declares the exchange too,
    so the binding exists before anything is published.
    """

    def __init__(self, exchange, kind=BROADCAST, routing_key=""):
        self.exchange = exchange
        self.connection = connect()
        self.channel = self.connection.channel()
        self.channel.exchange_declare(exchange, **kind)
        self.name = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.name, exchange, routing_key=routing_key)

    def get(self, timeout=5.0):
        return get_message(self.channel, self.name, timeout)

    def close(self):
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.channel.queue_delete(self.name)
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass
class Answer:
    """One reply a responder sends: body, extra properties, when, and how.

    ``properties`` are ``pika.BasicProperties`` keywords.  ``delay`` holds the reply back while
    later requests are served; with ``blocking`` the responder sleeps instead, serving nothing
    meanwhile (a single-threaded legacy service).  ``correlate`` False answers the way the seed
    does, without the request's ``correlation_id``.
    """

    body: bytes
    properties: dict = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    correlate: bool = True
    blocking: bool = False


def echo(properties, body):
    """Reply with the request's body, content type and headers."""
    return [Answer(body, {"content_type": properties.content_type, "headers": properties.headers})]


class Responder(threading.Thread):
    """An RPC responder on its own connection and thread, as a legacy system would run one.

    Declares the direct exchange (as responders do; the gateway never
    does), binds an exclusive queue with ``routing_key`` and sends each
    request the ``Answer``s of ``handler(properties, body)`` (none, one or
    several).  Requests it saw are in ``self.requests`` as ``(properties, body)``.
    """

    def __init__(self, exchange, routing_key, handler=echo):
        super().__init__(name=f"responder {exchange}/{routing_key}", daemon=True)
        self.exchange = exchange
        self.routing_key = routing_key
        self.handler = handler
        self.requests = []
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error = None

    def run(self):
        try:
            connection = connect()
        except Exception as error:  # reported by start()
            self.error = error
            self.ready.set()
            return
        try:
            ch = connection.channel()
            ch.exchange_declare(self.exchange, **RPC)
            queue = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(queue, self.exchange, routing_key=self.routing_key)
            ch.basic_consume(queue, self._on_request(connection, ch), auto_ack=True)
            self.ready.set()
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=0.05)
        except Exception as error:
            self.error = error
            self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _on_request(self, connection, ch):
        def on_request(_ch, method, properties, body):
            self.requests.append((properties, body))
            for answer in self.handler(properties, body) or ():
                correlation_id = properties.correlation_id if answer.correlate else None
                reply = pika.BasicProperties(correlation_id=correlation_id, **answer.properties)

                def send(answer=answer, reply=reply):
                    ch.basic_publish("", properties.reply_to, answer.body, reply)

                if answer.delay and answer.blocking:
                    time.sleep(answer.delay)
                    send()
                elif answer.delay:
                    connection.call_later(answer.delay, send)
                else:
                    send()

        return on_request

    def start(self, timeout=10.0):
        super().start()
        if not self.ready.wait(timeout):
            raise RuntimeError("the responder did not start in time")
        if self.error is not None:
            raise RuntimeError(f"the responder failed: {self.error!r}")
        return self

    def stop(self, timeout=10.0):
        """Stop serving; raise what went wrong while it served, if anything did."""
        self.stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"the responder on {self.exchange} did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        delete(exchanges=[self.exchange])
