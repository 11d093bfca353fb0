"""RPC channels on the direct publisher's connection: direct reply-to, one call per channel.

The same promises as ``rpc`` (the pika path), without handing each call to
pika's I/O thread and its reply back: the request thread takes a channel and
queues its publish itself, then waits on a bare lock; the publisher's reader
thread decodes the reply and releases it.  Each channel carries one call at a
time, so a reply is unambiguous even from a responder that does not copy
``correlation_id``.  A channel whose call timed out, failed, or got a
correlation-less reply (a second one may follow) is closed, and its number
is used again only after the broker's Close-Ok: its reply-to address dies
with it, so a late reply can never reach a later call.

``RpcChannels`` is a state machine without I/O: every method runs under the
publisher's lock and returns the frames to send and the calls to resolve.
"""

import dataclasses
import logging
import threading
import time
import uuid

from pika import frame, spec

from hutch.amqp import wire
from hutch.amqp.outcomes import NOT_FOUND, error_for_close, reply_code
from hutch.amqp.rpc import MAX_IDLE_CHANNELS, REPLY_TO, Reply, no_exchange, request_properties, unbound
from hutch.errors import BrokerUnavailable

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class RpcCall:
    """One call waiting for its reply; ``resolve`` releases the waiting request thread."""

    exchange: str
    routing_key: str
    timeout: float
    lock: object
    correlation_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    started: float = dataclasses.field(default_factory=time.monotonic)
    reply: object = None
    error: object = None

    @classmethod
    def new(cls, exchange, routing_key, timeout):
        lock = threading.Lock()
        lock.acquire()
        return cls(exchange, routing_key, timeout, lock)

    def resolve(self, reply, error):
        self.reply, self.error = reply, error
        self.lock.release()

    def properties(self, asked):
        """The request's properties, as ``rpc`` sets them."""
        return request_properties(asked, self.correlation_id, self.timeout)


class RpcChannel:
    """One channel consuming direct reply-to; ``closing``: we sent Channel.Close, waiting for Close-Ok."""

    __slots__ = ("call", "closing", "incoming", "number")

    def __init__(self, number):
        self.number = number
        self.call = None
        self.closing = False
        self.incoming = None  # [Deliver or Return, content header or None, body fragments] being read


class NoChannel(Exception):
    """Every channel number the connection allows is in use."""


class RpcChannels:
    """The RPC channels of one connection: numbers ``first`` .. ``last``; runs under the publisher's lock."""

    def __init__(self, first, last=None):
        self.first = first
        self.channels = {}
        self.reset(last if last is not None else first - 1)

    def reset(self, last):
        """A new connection (``last``: the highest channel number it allows); returns the calls that were
        in flight on the old one."""
        calls = [channel.call for channel in self.channels.values() if channel.call is not None]
        self.last = last
        self.channels = {}  # number -> RpcChannel, closing ones included
        self.idle = []
        self.free = []  # numbers closed and confirmed closed, to use again
        self.next_number = self.first
        return calls

    # -- request threads (under the lock) --------------------------------------

    def take(self, call):
        """A channel for ``call``: an idle one, else a new one; returns it and the frames opening it."""
        if self.idle:
            channel = self.idle.pop()
            channel.call = call
            return channel, b""
        if self.free:
            number = self.free.pop()
        elif self.next_number <= self.last:
            number = self.next_number
            self.next_number += 1
        else:
            raise NoChannel()
        channel = self.channels[number] = RpcChannel(number)
        channel.call = call
        # Pipelined: the broker handles a channel's methods in order, so the consumer exists before
        # the request is published, and the call does not wait a round trip for Open-Ok/Consume-Ok.
        opening = wire.method(number, spec.Channel.Open()) + wire.method(
            number, spec.Basic.Consume(queue=REPLY_TO, no_ack=True)
        )
        return channel, opening

    def give_up(self, channel, call):
        """The request thread stops waiting (timeout): (True, Channel.Close to send), or (False, b"")
        when the reader resolved the call meanwhile."""
        if channel.call is not call:
            return False, b""
        channel.call = None
        return True, self._retire(channel)

    # -- the reader thread (under the lock) ----------------------------------------

    def on_frame(self, received):
        """One frame on an RPC channel: returns (bytes to send, [(call, reply, error)])."""
        channel = self.channels.get(received.channel_number)
        if channel is None:
            return b"", []
        method = getattr(received, "method", None)
        if method is None:
            return self._on_content(channel, received)
        if isinstance(method, (spec.Basic.Deliver, spec.Basic.Return)):
            channel.incoming = [method, None, []]
        elif isinstance(method, spec.Channel.Close):
            return self._on_close(channel, method)
        elif isinstance(method, spec.Channel.CloseOk):
            if channel.closing:  # only now may the number carry a new channel
                del self.channels[channel.number]
                self.free.append(channel.number)
        elif isinstance(method, spec.Basic.Cancel):  # the broker ended the reply consumer
            call, channel.call = channel.call, None
            outcomes = [(call, None, BrokerUnavailable("The broker cancelled the reply consumer."))]
            return self._retire(channel), outcomes if call else []
        return b"", []

    def _on_content(self, channel, received):
        incoming = channel.incoming
        if incoming is None:
            return b"", []
        if isinstance(received, frame.Header):
            incoming[1] = received
        elif isinstance(received, frame.Body) and incoming[1] is not None:
            incoming[2].append(received.fragment)
        else:
            return b"", []
        method, header, fragments = incoming
        if sum(map(len, fragments)) < header.body_size:
            return b"", []
        channel.incoming = None
        body = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        if channel.closing or channel.call is None:
            log.info("dropping a reply that arrived with no call waiting")
            return b"", []
        if isinstance(method, spec.Basic.Return):
            return self._on_return(channel, method, header.properties)
        return self._on_reply(channel, header.properties, body)

    def _on_reply(self, channel, properties, body):
        call = channel.call
        correlation_id = properties.correlation_id
        if correlation_id and correlation_id != call.correlation_id:
            log.info("dropping a reply for another call (correlation_id %s)", correlation_id)
            return b"", []
        channel.call = None
        # A responder that does not echo correlation_id may answer twice: never reuse its channel.
        sending = self._release(channel) if correlation_id else self._retire(channel)
        return sending, [(call, Reply(properties, body), None)]

    def _on_return(self, channel, method, properties):
        call = channel.call
        if properties.correlation_id != call.correlation_id:
            return b"", []
        channel.call = None
        return self._release(channel), [(call, None, unbound(method))]

    def _on_close(self, channel, method):
        """The broker closed the channel: Close-Ok, and the number is free at once (unless we are
        closing it too: then our Close-Ok still comes)."""
        sending = wire.method(channel.number, spec.Channel.CloseOk())
        if channel.closing:
            return sending, []
        del self.channels[channel.number]
        self.free.append(channel.number)
        if channel in self.idle:
            self.idle.remove(channel)
        call, channel.call = channel.call, None
        if call is None:
            return sending, []
        error = no_exchange(call.exchange) if reply_code(method) == NOT_FOUND else error_for_close(method)
        return sending, [(call, None, error)]

    def fail_in_flight(self, error):
        """Fail every call waiting (the broker blocked the connection); their channels are retired, so a
        reply that comes after all reaches no later call.  Returns (bytes to send, outcomes)."""
        sending, outcomes = [], []
        for channel in list(self.channels.values()):
            if channel.call is not None:
                outcomes.append((channel.call, None, error))
                channel.call = None
                sending.append(self._retire(channel))
        return b"".join(sending), outcomes

    # -- channel bookkeeping ------------------------------------------------

    def _release(self, channel):
        if len(self.idle) >= MAX_IDLE_CHANNELS:
            return self._retire(channel)
        self.idle.append(channel)
        return b""

    def _retire(self, channel):
        if channel.closing:
            return b""
        channel.closing = True
        if channel in self.idle:
            self.idle.remove(channel)
        return wire.method(channel.number, spec.Channel.Close(200, "call ended", 0, 0))
