"""One AMQP consumer per exchange per event-server process, fanned out in memory to its streams.

A ``Feed`` consumes one exchange: its history stream from where the feed
stands (an exchange matching ``events_history``), or an exclusive
auto-delete queue (a live-only exchange).  Each message is rendered once and
handed to every ``Client`` of the exchange (``client``: a slow browser never
slows the others).  The feed keeps its newest events in a buffer, so a
stream that opens or resumes near the end starts without reading the
broker; older positions are read from the stream by a ``read_range`` of
their own (``history``).

When the connection comes back after a broker restart or a node failure,
a history feed consumes again from the offset after the last one it saw:
its clients stay connected and lose nothing.  A live-only feed cannot know
what it missed and tells its clients with a ``gap`` event.
"""

import asyncio
import collections
import contextlib
import logging
import secrets
import time

import aio_pika

from hutch.events import sse
from hutch.events.client import Event
from hutch.events.consumer import (
    AMQP_ERRORS,
    PREFETCH,
    Consumer,
    ConsumerCancelled,
    broker_error,
    is_request,
    offset_of,
)
from hutch.events.history import read_range
from hutch.events.resume import gap_event, live_id

log = logging.getLogger(__name__)

FIRST_DELIVERY_WAIT = 1.0  # seconds an empty stream takes to prove it is empty


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
            older, _dropped = await read_range(self, max(0, offset - count + 1), offset)
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
