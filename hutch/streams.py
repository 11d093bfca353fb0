"""Event streams of broadcast exchanges: one consumer per exchange per process, fanned out in memory.

However many browsers watch an exchange, a gateway process consumes it once
(``broker.subscribe``: one exclusive auto-delete queue).  The listener runs
on the AMQP I/O thread, so it only renders the event, appends it to the
exchange's bounded buffer and wakes the stream threads waiting on the
buffer's condition; each stream (one mod_wsgi request thread) sends what is
new to its browser.  When the last stream of an exchange ends, the process
keeps consuming for ``events_linger`` seconds, so a browser that reconnects
(after ``events_max_lifetime``, or a network blip) finds its place in the
buffer instead of a hole, and then lets the queue go.

Resuming.  A message's event id is the same in every process (``hutch.sse``),
so ``Last-Event-ID`` works wherever the browser lands.  Each stream also
starts with a ``ready`` event whose id is a position in this process's
buffer, ``~<epoch>.<seq>.<milliseconds>``: in the same feed it is exact, in
another process the time is used (less ``SKEW``; duplicates are possible
then, so clients dedupe by id).  When the gateway cannot prove it still
holds everything after the client's id, the stream says so with an
explicit ``gap`` event before sending what it has.
"""

import atexit
import collections
import dataclasses
import itertools
import logging
import os
import random
import secrets
import sys
import threading
import time
import weakref

from . import metrics, sse
from .errors import TooManyStreams

log = logging.getLogger(__name__)

SKEW = 1.0  # seconds two processes may differ in when they receive the same message
LIFETIME_JITTER = 0.15  # streams end between 85% and 100% of the lifetime, so reconnects spread out
MAX_LAST_EVENT_ID = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    seq: int  # this feed's own numbering, 1, 2, 3 ...
    id: str
    received: float
    frame: bytes  # the event as it goes on the wire, rendered once for every stream


class EventBuffer:
    """The last ``size`` events of one exchange in this process, in order."""

    def __init__(self, size):
        self.events = collections.deque(maxlen=size)
        self.last_seq = 0

    def append(self, event_id, received, frame):
        self.last_seq += 1
        self.events.append(Event(self.last_seq, event_id, received, frame))

    @property
    def first_seq(self):
        return self.last_seq - len(self.events) + 1

    @property
    def evicted(self):
        return self.last_seq - len(self.events)

    def after_seq(self, seq):
        """``(missed, events)``: the events after ``seq``, and how many of them are gone."""
        if seq >= self.last_seq:
            return 0, []
        start = seq + 1 - self.first_seq
        if start >= 0:
            return 0, list(itertools.islice(self.events, start, None))
        return -start, list(self.events)

    def seq_of(self, event_id):
        """The newest buffered event with this id (the same message may be published twice)."""
        for event in reversed(self.events):
            if event.id == event_id:
                return event.seq
        return None

    def received_after(self, moment):
        return [event for event in self.events if event.received > moment]


def parse_cursor(text):
    """``(epoch, seq, seconds)`` from ``~epoch.seq.milliseconds``, or None."""
    epoch, _, rest = text[len(sse.CURSOR_PREFIX) :].partition(".")
    seq, _, millis = rest.partition(".")
    if not (epoch and seq.isdigit() and millis.isdigit()):
        return None
    return epoch, int(seq), int(millis) / 1000


@dataclasses.dataclass
class Start:
    """Where a new stream begins: an optional gap, the events to resend, the live position."""

    gap: dict | None
    events: list
    seq: int
    cursor: str


class ExchangeFeed:
    """One exchange as this process consumes it: the broker's listener and its buffer."""

    def __init__(self, hub, exchange):
        self.hub = hub
        self.exchange = exchange
        self.condition = threading.Condition()
        self.buffer = EventBuffer(hub.settings.events_buffer)
        self.epoch = secrets.token_hex(4)
        self.since = self.clock = time.time()  # every message from about here on is in the buffer
        self.failure = None
        self.viewers = 0
        self.retired = False
        self.retire_timer = None

    # -- the broker's listener: called on the AMQP I/O thread, never blocks ------

    def on_message(self, exchange, properties, body):
        try:
            received = time.time()
            payload = sse.describe(exchange, properties, body, received, self.hub.settings.events_max_body)
            frame = sse.json_frame(payload, event_id=payload["id"])
        except Exception:  # an exception here would reach pika's I/O loop
            log.exception("cannot render a message of exchange %r as an event", exchange)
            return
        with self.condition:
            self.clock = max(self.clock, received)
            self.buffer.append(payload["id"], self.clock, frame)
            self.condition.notify_all()

    def on_error(self, error):
        log.warning("event streams of exchange %r fail: %s", self.exchange, error)
        with self.condition:
            self.failure = error
            self.condition.notify_all()
        self.hub.retire(self)

    # -- what streams ask, under ``condition`` ---------------------------------

    def now(self):
        self.clock = max(self.clock, time.time())
        return self.clock

    def cursor(self):
        return f"{sse.CURSOR_PREFIX}{self.epoch}.{self.buffer.last_seq}.{int(self.now() * 1000)}"

    def complete_from(self):
        """From when this feed holds every message it received."""
        if self.buffer.evicted and self.buffer.events:
            return self.buffer.events[0].received
        return self.since

    def start(self, last_event_id):
        """Where a stream resumes after ``last_event_id`` ("" for a fresh stream)."""
        buffer = self.buffer
        seq = buffer.last_seq
        if not last_event_id:
            return Start(None, [], seq, self.cursor())
        if last_event_id.startswith(sse.CURSOR_PREFIX):
            cursor = parse_cursor(last_event_id)
            if cursor is not None:
                return self._start_at_cursor(last_event_id, *cursor)
        else:
            known = buffer.seq_of(last_event_id)
            if known is not None:
                return Start(None, buffer.after_seq(known)[1], seq, self.cursor())
        events = list(buffer.events)
        return Start(self.gap("unknown_id", last_event_id, None, events), events, seq, self.cursor())

    def _start_at_cursor(self, text, epoch, cursor_seq, moment):
        buffer = self.buffer
        if epoch == self.epoch and cursor_seq <= buffer.last_seq:
            missed, events = buffer.after_seq(cursor_seq)
            gap = self.gap("overflow", text, missed, events) if missed else None
            return Start(gap, events, buffer.last_seq, self.cursor())
        start = moment - SKEW
        events = buffer.received_after(start)
        complete = self.since <= start and (not buffer.evicted or buffer.events[0].received <= start)
        gap = None if complete else self.gap("not_buffered", text, None, events)
        return Start(gap, events, buffer.last_seq, self.cursor())

    def gap(self, reason, last_event_id, missed, resent):
        """The ``gap`` event's data: ``missed`` is a count, or None when nobody can know."""
        return {
            "reason": reason,
            "last_event_id": last_event_id,
            "missed": missed,
            "resent": len(resent),
            "complete_from": sse.iso_time(self.complete_from()),
        }


class StreamHub:
    """Every feed of this process, and the flag that ends every stream at shutdown."""

    def __init__(self, broker, settings):
        self.broker = broker
        self.settings = settings
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.feeds = {}
        self.streams = 0
        self.stopping = threading.Event()
        self.limit = stream_limit(settings.events_max_streams)

    def open(self, exchange, last_event_id=""):
        """A new ``EventStream`` of ``exchange``; 503 when this process is full or stopping.

        The limit keeps a share of the process's threads for pages and API
        requests; the client retries (the dashboard does, with back-off).
        """
        with self.lock:
            retry = self.settings.retry_after
            if self.stopping.is_set():
                raise TooManyStreams("This gateway process is shutting down; retry shortly.", retry)
            if self.limit is not None and self.streams >= self.limit:
                detail = f"This gateway process already serves {self.limit} event streams."
                raise TooManyStreams(detail, retry)
            feed = self.feeds.get(exchange)
            created = feed is None
            if created:
                feed = self.feeds[exchange] = ExchangeFeed(self, exchange)
            if feed.retire_timer is not None:
                feed.retire_timer.cancel()
                feed.retire_timer = None
            feed.viewers += 1
            self.streams += 1
        metrics.event_stream_opened()
        if created:
            self.broker.subscribe(exchange, feed)
        lifetime = self.settings.events_max_lifetime * (1 - random.uniform(0, LIFETIME_JITTER))  # noqa: S311
        return EventStream(self, feed, last_event_id[:MAX_LAST_EVENT_ID], lifetime)

    def release(self, feed):
        """A stream ended; the feed's last viewer starts the linger before its queue goes."""
        metrics.event_stream_closed()
        with self.lock:
            self.streams -= 1
            feed.viewers -= 1
            if feed.viewers > 0 or feed.retired:
                return
            idle = feed.failure is None and not self.stopping.is_set()
            linger = self.settings.events_linger if idle else 0
            feed.retire_timer = threading.Timer(linger, self._retire_if_idle, (feed,))
            feed.retire_timer.daemon = True
            feed.retire_timer.start()

    def _retire_if_idle(self, feed):
        self.retire(feed, only_if_idle=True)

    def retire(self, feed, only_if_idle=False):
        """Stop consuming for ``feed``; later viewers of its exchange get a fresh feed."""
        with self.lock:
            if feed.retired or (only_if_idle and feed.viewers > 0):
                return
            feed.retired = True
            if self.feeds.get(feed.exchange) is feed:
                del self.feeds[feed.exchange]
        self.broker.unsubscribe(feed.exchange, feed)

    def stop(self, *_args, **_event):
        """End every stream now (process shutdown): each sends ``closing`` and returns."""
        self.stopping.set()
        with self.lock:
            feeds = list(self.feeds.values())
        for feed in feeds:
            with feed.condition:
                feed.condition.notify_all()


class EventStream:
    """The WSGI body of one ``GET /events/{exchange}``.

    ``close()`` (which every WSGI server calls, also for HEAD and when the
    client has gone) releases the stream's place even if it was never
    iterated; a generator alone would not run its ``finally`` then.
    """

    def __init__(self, hub, feed, last_event_id, lifetime):
        self.hub = hub
        self.feed = feed
        self.last_event_id = last_event_id
        self.deadline = time.monotonic() + lifetime
        self.frames = self._frames()
        self.released = False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.frames)

    def close(self):
        try:
            self.frames.close()
        finally:
            if not self.released:
                self.released = True
                self.hub.release(self.feed)

    def _frames(self):
        feed, hub = self.feed, self.hub
        heartbeat = hub.settings.events_heartbeat
        yield sse.retry()  # the first bytes: mod_wsgi sends the headers with them
        with feed.condition:
            start = feed.start(self.last_event_id)
            ready = {
                "exchange": feed.exchange,
                "resent": len(start.events),
                "buffered": len(feed.buffer.events),
                "complete_from": sse.iso_time(feed.complete_from()),
            }
        chunks = [sse.json_frame(start.gap, "gap")] if start.gap else []
        chunks.extend(event.frame for event in start.events)
        chunks.append(sse.json_frame(ready, "ready", start.cursor))
        yield b"".join(chunks)
        seq = start.seq
        next_beat = time.monotonic() + heartbeat
        while True:
            with feed.condition:
                while not (hub.stopping.is_set() or feed.failure or feed.buffer.last_seq > seq):
                    wake = min(next_beat, self.deadline)
                    now = time.monotonic()
                    if now >= wake:
                        break
                    feed.condition.wait(wake - now)
                missed, events = feed.buffer.after_seq(seq)
                seq = feed.buffer.last_seq
                gap = feed.gap("overflow", None, missed, events) if missed else None
                failure = feed.failure
            if events:
                chunks = [sse.json_frame(gap, "gap")] if gap else []
                chunks.extend(event.frame for event in events)
                yield b"".join(chunks)
                next_beat = time.monotonic() + heartbeat
            if hub.stopping.is_set():
                yield closing("shutdown")
                return
            if failure is not None:
                yield unavailable(failure)
                return
            now = time.monotonic()
            if now >= self.deadline:
                yield closing("max_lifetime")
                return
            if now >= next_beat:
                if not hub.broker.is_connected():
                    yield unavailable(None)
                    return
                yield sse.comment("heartbeat")
                next_beat = time.monotonic() + heartbeat


def closing(reason):
    """The stream ends on purpose; reconnect (with the last id) at once."""
    return sse.json_frame({"reason": reason, "retry_ms": sse.RETRY_MS}, "closing")


def unavailable(error):
    """The stream cannot go on: the broker is gone, or the exchange cannot be consumed."""
    code = getattr(error, "code", "broker_unavailable")
    detail = getattr(error, "detail", None) or "The gateway lost its connection to the message broker."
    return sse.json_frame({"error": code, "detail": detail}, "unavailable")


def stream_limit(configured):
    """Streams one process may hold: the setting, or (0) most of mod_wsgi's threads, keeping a
    fifth (at least 2) for pages and API requests; no limit outside mod_wsgi."""
    if configured > 0:
        return configured
    threads = getattr(sys.modules.get("mod_wsgi"), "threads_per_process", None)
    if not isinstance(threads, int) or threads <= 0:
        return None
    return max(1, threads - max(2, threads // 5))


_hubs = weakref.WeakKeyDictionary()  # broker -> hub: one hub per process per gateway
_hubs_lock = threading.Lock()


def hub_for(gateway):
    """This process's ``StreamHub`` for ``gateway``, made on first use (after mod_wsgi forked)."""
    with _hubs_lock:
        hub = _hubs.get(gateway.broker)
        if hub is None or hub.pid != os.getpid():
            hub = _hubs[gateway.broker] = StreamHub(gateway.broker, gateway.settings)
            _stop_at_shutdown(hub)
    return hub


def _stop_at_shutdown(hub):
    """mod_wsgi's ``process_stopping`` fires before it waits for request threads; atexit elsewhere."""
    subscribe = getattr(sys.modules.get("mod_wsgi"), "subscribe_shutdown", None)
    if subscribe is not None:
        subscribe(hub.stop)
    atexit.register(hub.stop)
