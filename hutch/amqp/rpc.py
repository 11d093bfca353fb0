"""Request/response over direct reply-to, one call per channel at a time.

Direct reply-to (``amq.rabbitmq.reply-to``) needs no queue per call: the
channel that publishes consumes the pseudo-queue with auto-ack first.  Each
channel carries one call at a time, so a reply is unambiguous even from a
seed-style responder that does not copy ``correlation_id``.  A channel whose
call timed out, or that got an uncorrelated reply (a second one may follow),
is closed: its reply-to address dies with it, so a late reply can never reach
a later call.  A publish to a missing exchange closes only its own channel.
"""

import copy
import dataclasses
import logging
import time
import uuid

from hutch import metrics
from hutch.amqp.outcomes import NOT_FOUND, error_for_close, reply_code
from hutch.errors import BrokerUnavailable, NoResponder, RpcTimeout

log = logging.getLogger(__name__)

REPLY_TO = "amq.rabbitmq.reply-to"
MAX_IDLE_CHANNELS = 32


@dataclasses.dataclass(frozen=True)
class Reply:
    properties: object
    body: bytes


def request_properties(asked, correlation_id, timeout):
    """A request's properties: the client's, with reply-to, ``correlation_id`` and an expiration
    (the broker drops a request nobody took within the call's timeout)."""
    properties = copy.copy(asked)
    properties.reply_to = REPLY_TO
    properties.correlation_id = correlation_id
    properties.expiration = str(max(1, int(timeout * 1000)))
    return properties


def unbound(returned):
    """The 503 for a request the broker returned (a Basic.Return): no queue for its routing key."""
    return NoResponder(
        f"No responder queue is bound to exchange {returned.exchange!r} "
        f"with routing key {returned.routing_key!r}."
    )


def no_exchange(exchange):
    """The 503 for a request to an exchange that does not exist (its channel closed with 404)."""
    return NoResponder(f"The exchange {exchange!r} does not exist.")


def broadcast_exchange(exchange):
    """The 503 for a request to a broadcast exchange that keeps history: never published there."""
    return NoResponder(
        f"The exchange {exchange!r} is a broadcast exchange (it keeps history for the dashboard); "
        "RPC responders use a direct exchange of their own."
    )


@dataclasses.dataclass(eq=False)
class Call:
    exchange: str
    routing_key: str
    message: object
    timeout: float
    on_done: object  # on_done(reply, error)
    correlation_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    timer: object = None
    started: float = dataclasses.field(default_factory=time.monotonic)  # for the latency metric


class RpcChannel:
    """A channel consuming direct reply-to, carrying at most one call."""

    def __init__(self, pool, first_call):
        self.pool = pool
        self.channel = None
        self.call = first_call  # failed by _closed if the channel never opens
        self.retired = False
        pool.connection.channel(on_open_callback=self._opened)

    def _opened(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._closed)
        if self.retired:  # its call failed while the channel was opening
            channel.close()
            return
        channel.add_on_return_callback(self._returned)
        channel.basic_consume(REPLY_TO, self._replied, auto_ack=True, callback=self._consuming)

    def _consuming(self, _frame):
        if self.retired or self.call is None:
            self.retire()
        else:
            self.start(self.call)

    def start(self, call):
        self.call = call
        properties = request_properties(call.message.properties, call.correlation_id, call.timeout)
        self.channel.basic_publish(
            call.exchange, call.routing_key, call.message.body, properties, mandatory=True
        )
        call.timer = self.pool.connection.ioloop.call_later(call.timeout, self._timed_out)

    def _finish(self, reply, error, reusable):
        call, self.call = self.call, None
        if call.timer is not None:
            self.pool.connection.ioloop.remove_timeout(call.timer)
        if reusable:
            self.pool.release(self)
        else:
            self.retire()
        call.on_done(reply, error)

    def _replied(self, channel, method, properties, body):
        if self.call is None:
            log.info("dropping a reply that arrived with no call waiting")
            return
        if properties.correlation_id and properties.correlation_id != self.call.correlation_id:
            log.info("dropping a reply for another call (correlation_id %s)", properties.correlation_id)
            return
        metrics.rpc_replied(time.monotonic() - self.call.started)
        # A responder that does not echo correlation_id may answer twice:
        # never reuse its channel.
        self._finish(Reply(properties, body), None, reusable=bool(properties.correlation_id))

    def _returned(self, channel, method, properties, body):
        if self.call is not None and properties.correlation_id == self.call.correlation_id:
            metrics.rpc_no_responder()
            self._finish(None, unbound(method), reusable=True)

    def _timed_out(self):
        if self.call is not None:
            self.call.timer = None
            metrics.rpc_timed_out()
            self._finish(None, RpcTimeout(f"No reply within {self.call.timeout:g} s."), reusable=False)

    def retire(self):
        self.retired = True
        self.pool.forget(self)
        if self.channel is not None and self.channel.is_open:
            self.channel.close()

    def _closed(self, channel, reason):
        self.retired = True
        self.pool.forget(self)
        if self.call is None:
            return
        if reply_code(reason) == NOT_FOUND:
            metrics.rpc_no_responder()
            error = no_exchange(self.call.exchange)
        elif self.pool.connection.is_open:
            error = error_for_close(reason)
        else:
            error = BrokerUnavailable("The connection to the broker was lost during the call.")
        self._finish(None, error, reusable=False)


class RpcPool:
    """The RPC channels of one connection; lives on the I/O thread."""

    def __init__(self, connection):
        self.connection = connection
        self.idle = []
        self.all = set()

    def call(self, call):
        if self.idle:
            self.idle.pop().start(call)
            return
        self.all.add(RpcChannel(self, call))

    def release(self, rpc_channel):
        if rpc_channel.retired:
            return
        if len(self.idle) >= MAX_IDLE_CHANNELS:
            rpc_channel.retire()
        else:
            self.idle.append(rpc_channel)

    def forget(self, rpc_channel):
        self.all.discard(rpc_channel)
        if rpc_channel in self.idle:
            self.idle.remove(rpc_channel)

    def fail_in_flight(self, error):
        """Fail every call waiting for a reply (the broker blocked the connection).

        Their channels are retired, so a reply that comes after all reaches no later call.
        """
        for rpc_channel in list(self.all):
            if rpc_channel.call is not None:
                rpc_channel._finish(None, error, reusable=False)

    def abort(self, error):
        """The connection is gone: fail every call in flight."""
        channels, self.all, self.idle = list(self.all), set(), []
        for rpc_channel in channels:
            rpc_channel.retired = True
            call, rpc_channel.call = rpc_channel.call, None
            if call is not None:
                call.on_done(None, error)
