"""One AMQP consumer per exchange per event-server process, fanned out in memory to its streams.

A ``Feed`` consumes one exchange: its history stream from where the feed
stands (an exchange matching ``events_history``), or an exclusive
auto-delete queue (a live-only exchange).  Each message is rendered once and
handed to every ``Client`` of the exchange, which writes it straight to its
socket, so a slow browser never slows the others: once more than
``events_max_pending`` bytes wait for it, it is cut off (and resumes
exactly when it reconnects).  The feed keeps its newest events in a buffer,
so a stream that opens or resumes near the end starts without reading the
broker; older positions are read from the stream by a ``read_range`` of
their own.

When the connection comes back after a broker restart or a node failure,
a history feed consumes again from the offset after the last one it saw:
its clients stay connected and lose nothing.  A live-only feed cannot know
what it missed and tells its clients with a ``gap`` event.
"""

import asyncio
import collections
import contextlib
import dataclasses
import logging
import secrets
import time

import aio_pika
import aiormq

from hutch.errors import BrokerUnavailable, Forbidden, PreconditionFailed
from hutch.events import sse
from hutch.events.resume import gap_event, live_id

log = logging.getLogger(__name__)

PREFETCH = 500  # stream consumers must set one; deliveries are acked as they are fanned out
FIRST_DELIVERY_WAIT = 1.0  # seconds an empty stream takes to prove it is empty
READ_IDLE = 5.0  # a range read that gets nothing for this long has reached the end of the stream
NOT_FOUND, ACCESS_REFUSED, PRECONDITION_FAILED = 404, 403, 406
AMQP_ERRORS = (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, ConnectionError, OSError)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    position: int
    frame: bytes
    chunk: bytes = b""  # the frame as one HTTP/1.1 chunk, made once for every stream

    def __post_init__(self):
        if not self.chunk:
            object.__setattr__(self, "chunk", as_chunk(self.frame))


def as_chunk(data):
    """``data`` in chunked transfer encoding, as aiohttp frames what a handler writes."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class ConsumerCancelled(ConnectionError):
    """The broker ended a consumer on a live connection: its queue was deleted, or its stream member moved."""


class Consumer:
    """``basic.consume`` into a local queue, read in delivery order.

    aio-pika's own queue iterator rejects the deliveries it still holds when
    it closes, and a stream queue answers a reject by closing the whole
    connection (NOT_IMPLEMENTED); this one just closes its channel, which a
    stream takes as the end of the read.
    """

    def __init__(self, channel, queue, arguments=None, no_ack=False):
        self.channel = channel
        self.queue = queue
        self.arguments = arguments or {}
        self.no_ack = no_ack
        self.messages = asyncio.Queue()

    async def __aenter__(self):
        self.closed = asyncio.ensure_future(self.channel.closed())  # one watcher for every wait
        self.cancelled = asyncio.get_running_loop().create_future()
        underlay = await self.channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._cancelled_by_broker)
        await self.queue.consume(self._deliver, arguments=self.arguments, no_ack=self.no_ack)
        return self

    def _cancelled_by_broker(self, _frame):
        """The broker ended the consumer (its queue was deleted, or its stream member moved)."""
        if not self.cancelled.done():
            self.cancelled.set_result(None)

    async def _deliver(self, message):
        self.messages.put_nowait(message)

    async def next(self, timeout=None):
        """The next delivery; TimeoutError after ``timeout`` s; ConnectionError once the channel
        closed or the broker cancelled the consumer (the feed then consumes again after its tail)."""
        if self.messages.empty():
            closed, cancelled = self.closed, self.cancelled
            waiter = asyncio.ensure_future(self.messages.get())
            done, _ = await asyncio.wait(
                {waiter, closed, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                waiter.cancel()
                if closed in done:
                    raise ConnectionError("the channel closed")
                if cancelled in done:
                    raise ConsumerCancelled("the broker cancelled the consumer")
                raise TimeoutError
            return waiter.result()
        return self.messages.get_nowait()

    async def __aexit__(self, *_exc):
        with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
            await self.channel.close()
        self.closed.cancel()
        self.cancelled.cancel()


def is_request(message):
    """An RPC request (it names a ``reply_to``) is never a broadcast event, wherever it was routed:
    an AMQP caller may publish one to a broadcast exchange; the gateway does not publish it there."""
    return bool(message.reply_to)


def offset_of(message):
    offset = (message.headers or {}).get("x-stream-offset")
    return offset if isinstance(offset, int) else None


PRECONDITION_ERRORS = (
    aio_pika.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelPreconditionFailed,
)
ACCESS_ERRORS = (aiormq.exceptions.ChannelAccessRefused,)


def broker_error(error):
    """A HutchError for what the broker said when it refused a declaration.

    aiormq's channel errors carry ``reply_code=None`` and only a text, so the
    exception's class decides first; a bare code in the arguments is a fallback.
    """
    code = getattr(error, "reply_code", None) or (error.args[0] if error.args else None)
    text = str(error)
    if isinstance(error, PRECONDITION_ERRORS) or (isinstance(code, int) and code == PRECONDITION_FAILED):
        return PreconditionFailed(f"The broker refused: {text}")
    if isinstance(error, ACCESS_ERRORS) or (isinstance(code, int) and code == ACCESS_REFUSED):
        return Forbidden(f"The broker refused access: {text}")
    return BrokerUnavailable(f"The broker cannot serve this exchange now: {text}")


def close_code(error):
    frame = getattr(error, "frame", None)
    return getattr(frame, "reply_code", None) if frame is not None else None


class Client:
    """One open stream as the feed sees it.

    Once its replay is written, ``push`` writes each event's ready-made chunk
    straight to the stream's transport: one ``send`` per stream and
    broadcast, no queue and no task wake-up.  The transport's own buffer is
    the stream's backlog: a stream with more than ``max_pending`` bytes
    waiting there (a browser that stopped reading) is cut off instead of
    slowing the others, and resumes exactly when it reconnects.  Until then
    (the replay is still being written) events wait in ``pending``, bounded
    the same way.  The stream's task only waits for its end (cut, lifetime,
    shutdown): one future per stream, no timer (heartbeats and lifetimes are
    the tier's ticker's job).
    """

    __slots__ = (
        "after",
        "chunked",
        "cut",
        "deadline",
        "ending",
        "last_write",
        "max_pending",
        "pending",
        "pending_bytes",
        "transport",
        "waiter",
    )

    def __init__(self, after, max_pending, deadline):
        self.after = after  # positions at or below this one were sent (or are not wanted)
        self.max_pending = max_pending
        self.deadline = deadline  # loop time at which the stream ends with ``closing``
        self.pending = []
        self.pending_bytes = 0
        self.cut = False
        self.ending = None  # why the stream is to end (``max_lifetime``, ``shutdown``)
        self.last_write = 0.0  # loop time of the last frame that was not an event (events: the feed's)
        self.waiter = None
        self.transport = None  # set once the replay is written: from then on events go straight to it
        self.chunked = True

    def push(self, event):
        if event.position <= self.after:
            return
        self.after = event.position
        transport = self.transport
        if transport is None:
            self._hold(event.frame)
            return
        if self.cut or self.ending:
            return
        if transport.is_closing():
            self.end("disconnected")  # the browser went away: its task ends and detaches it
            return
        if transport.get_write_buffer_size() > self.max_pending:
            self._cut()
            return
        transport.write(event.chunk if self.chunked else event.frame)

    def say(self, frame):
        """A frame outside the positions (a ``gap``, a heartbeat)."""
        transport = self.transport
        if transport is None:
            self._hold(frame)
        elif not (self.cut or transport.is_closing()):
            transport.write(as_chunk(frame) if self.chunked else frame)

    def _hold(self, frame):
        if self.cut:
            return
        self.pending.append(frame)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self.max_pending:
            self.pending.clear()
            self._cut()

    def _cut(self):
        self.cut = True  # too slow: its task ends the stream; the browser resumes from its last id
        self._wake()

    def _wake(self):
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, reason):
        if self.ending is None:
            self.ending = reason
        self._wake()

    def take(self):
        frames, self.pending, self.pending_bytes = self.pending, [], 0
        return b"".join(frames)

    def go_live(self, transport, chunked):
        """Write events straight to ``transport`` from now on (call with ``pending`` empty)."""
        self.transport = transport
        self.chunked = chunked

    async def wait(self):
        """Until the stream is to end: cut off, or a reason to end."""
        if self.cut or self.ending:
            return
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class Feed:
    """One exchange consumed by this process, its buffer of recent events, and its clients."""

    def __init__(self, tier, exchange):
        self.tier = tier
        self.exchange = exchange
        settings = tier.settings
        self.history = settings.history.keeps(exchange)
        self.queue_name = settings.history.queue(exchange) if self.history else None
        self.buffer = collections.deque(maxlen=max(settings.events_buffer, settings.history.count, 1))
        self.clients = set()
        self.tail = None  # the newest position seen
        self.reaching = []  # (position, future) of streams waiting for the feed to see a position
        self.last_publish = 0.0  # loop time of the last event: every live stream got a frame then
        self.feed_id = secrets.token_hex(4)  # names a live-only feed's positions
        self.ready = asyncio.Event()
        self.failure = None
        self.consumer = None
        self.linger = None
        self.closed = False
        self.connected_once = False

    # -- start: declare, then consume ------------------------------------------

    async def declare(self):
        """Declare the exchange as for a broadcast and, with history, bind its stream (406 kept as is)."""
        channel = await self.tier.link.channel()
        try:
            await channel.declare_exchange(self.exchange, "fanout", durable=False, auto_delete=True)
            if self.history:
                arguments = self.tier.settings.history.arguments()
                try:
                    queue = await channel.declare_queue(self.queue_name, durable=True, arguments=arguments)
                except aio_pika.exceptions.ChannelPreconditionFailed:
                    log.warning(
                        "history stream %r exists with other arguments; used as it is", self.queue_name
                    )
                    channel = await self.tier.link.channel()
                    queue = await channel.declare_queue(self.queue_name, passive=True)
                await queue.bind(self.exchange)
        except aio_pika.exceptions.ChannelClosed as error:
            raise broker_error(error) from None
        finally:
            if not channel.is_closed:
                await channel.close()

    def start(self):
        self.consumer = asyncio.create_task(self.consume(), name=f"feed {self.exchange}")

    async def consume(self):
        """Consume until the feed closes, again after every reconnection."""
        redeclare = False
        while not self.closed:
            await self.tier.link.up.wait()
            try:
                if redeclare:
                    await self.declare()  # a broker restart forgets the transient exchange and its bindings
                if self.history:
                    await self._consume_stream()
                else:
                    await self._consume_live()
            except asyncio.CancelledError:
                raise
            except ConsumerCancelled:
                redeclare = False  # same connection: the stream is checked, never made again, here
                await asyncio.sleep(0.2)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                log.warning("the history stream of %r is gone; its streams end", self.exchange)
                for client in list(self.clients):
                    client.end("reset")
                self.tier.retire(self, force=True)
                return
            except AMQP_ERRORS as error:
                redeclare = True
                if self.closed:
                    return
                log.warning("feed of %r interrupted: %s", self.exchange, error)
                await asyncio.sleep(0.2)
            except Exception:
                log.exception("feed of %r failed", self.exchange)
                await asyncio.sleep(1.0)

    async def _consume_stream(self):
        channel = await self.tier.link.channel()
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(self.queue_name, passive=True)
            if self.tail is not None:
                start = self.tail + 1
            elif self.connected_once:
                start = "first"  # the stream was empty when this feed started: all of it is new
            else:
                start = "last"  # the last chunk: tells where the stream ends, then live
            self.connected_once = True
            async with Consumer(channel, queue, {"x-stream-offset": start}) as messages:
                if not self.ready.is_set():
                    await self._prime(messages)
                while True:
                    message = await messages.next()
                    self.on_stream_message(message)
                    await message.ack()
        finally:
            with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
                await channel.close()

    async def _prime(self, messages):
        """Learn where the stream ends, backfill the last ``events_history_count``, then open for clients."""
        try:
            first = await messages.next(FIRST_DELIVERY_WAIT)
        except TimeoutError:
            self.ready.set()  # empty: what arrives from now on is live
            return
        offset = offset_of(first)
        count = self.tier.settings.history.count
        if offset is not None and count > 1 and offset > 0:
            older, _dropped = await self.read_range(max(0, offset - count + 1), offset)
            for event in older:
                self.buffer.append(event)
                self.tail = event.position
        self.on_stream_message(first)
        await first.ack()
        self.ready.set()

    async def _consume_live(self):
        channel = await self.tier.link.channel()
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await queue.bind(self.exchange)
            if self.connected_once:
                self.say(sse.json_frame(gap_event("reconnected", None, None), "gap"))
            self.connected_once = True
            self.ready.set()
            async with Consumer(channel, queue, no_ack=True) as messages:
                while True:
                    message = await messages.next()
                    if is_request(message):
                        continue
                    seq = (self.tail or 0) + 1
                    self.publish(Event(seq, self.render(message, live_id(self.feed_id, seq))))
        finally:
            with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
                await channel.close()

    # -- messages ----------------------------------------------------------------

    def render(self, message, event_id):
        received = sse.published_at(message, time.time())
        payload = sse.describe(self.exchange, event_id, message, received, self.tier.settings.events_max_body)
        return sse.json_frame(payload, event_id=event_id)

    def on_stream_message(self, message):
        offset = offset_of(message)
        if offset is None or (self.tail is not None and offset <= self.tail):
            return  # redelivered after a reconnect: already fanned out
        if is_request(message):
            self.tail = offset  # passed, never shown
            return
        try:
            frame = self.render(message, str(offset))
        except Exception:
            log.exception("cannot render offset %s of %r", offset, self.exchange)
            return
        self.publish(Event(offset, frame))

    async def reach(self, position, timeout):
        """Wait until the feed has seen ``position`` (it may lag the broker), at most ``timeout`` s."""
        if self.tail is not None and self.tail >= position:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.reaching.append((position, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self.reaching.remove((position, waiter))

    def publish(self, event):
        self.tail = event.position
        if self.reaching:
            for position, waiter in self.reaching:
                if position <= event.position and not waiter.done():
                    waiter.set_result(None)
        self.buffer.append(event)
        self.tier.deliveries += 1
        self.last_publish = asyncio.get_running_loop().time()
        for client in self.clients:
            client.push(event)

    def say(self, frame):
        for client in self.clients:
            client.say(frame)

    async def read_range(self, start, stop):
        """The events at offsets ``start`` up to (not including) ``stop``, read from the stream.

        Returns ``(events, dropped)``: ``dropped`` is True when retention has
        removed offsets from ``start`` on (the stream begins later).
        """
        channel = await self.tier.link.channel()
        events, dropped = [], False
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.declare_queue(self.queue_name, passive=True)
            async with Consumer(channel, queue, {"x-stream-offset": start}) as messages:
                while True:
                    try:
                        message = await messages.next(READ_IDLE)
                    except TimeoutError:
                        break
                    offset = offset_of(message)
                    await message.ack()
                    if offset is None:
                        continue
                    if not events and offset > start:
                        dropped = await self.first_offset(start) > start
                    if offset >= stop:
                        break
                    if is_request(message):
                        continue
                    events.append(Event(offset, self.render(message, str(offset))))
        finally:
            with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
                await channel.close()
        return events, dropped

    async def first_offset(self, fallback):
        """The stream's first retained offset (``fallback`` if it cannot be read)."""
        channel = await self.tier.link.channel()
        try:
            await channel.set_qos(prefetch_count=1)
            queue = await channel.declare_queue(self.queue_name, passive=True)
            async with Consumer(channel, queue, {"x-stream-offset": "first"}) as messages:
                try:
                    message = await messages.next(READ_IDLE)
                except TimeoutError:
                    return fallback
                offset = offset_of(message)
                await message.ack()
                return fallback if offset is None else offset
        finally:
            with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
                await channel.close()

    # -- the broker link's news ------------------------------------------------------

    def on_connected(self):
        pass  # ``consume`` waits for the link itself

    def on_lost(self):
        pass  # history feeds resume after ``tail``; live-only ones say ``gap`` when consuming again

    # -- clients ---------------------------------------------------------------------

    def attach(self, client):
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self.clients.add(client)

    def detach(self, client):
        self.clients.discard(client)
        if not self.clients and not self.closed:
            delay = 0 if self.tier.stopping else self.tier.settings.events_linger
            self.linger = asyncio.get_running_loop().call_later(delay, self.tier.retire, self)

    def buffered_from(self, position):
        return [event for event in self.buffer if event.position >= position]

    @property
    def buffer_first(self):
        return self.buffer[0].position if self.buffer else None

    async def close(self):
        self.closed = True
        if self.consumer is not None:
            self.consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, *AMQP_ERRORS):
                await self.consumer
