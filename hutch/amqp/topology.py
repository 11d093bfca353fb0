"""Declarations (exchanges, consumer queues), each on a short-lived channel.

A declare that clashes with what exists closes its channel (406); running
every declare on a channel of its own keeps that failure away from the
channels that carry traffic.  Results are cached per connection, so the hot
path never declares; ``forget`` drops an exchange the broker says is gone.

A broadcast exchange that keeps history (``hutch.amqp.history``) gets its stream
queue declared and bound right after the exchange itself, so its messages
are kept from the first broadcast on, whether or not anyone watches.
"""

import logging
import time

from hutch.amqp.history import HistoryPolicy
from hutch.amqp.outcomes import (
    NOT_FOUND,
    PRECONDITION_FAILED,
    error_for_close,
    existing_queue_type,
    reply_code,
)

log = logging.getLogger(__name__)

BROADCAST = {"exchange_type": "fanout", "durable": False, "auto_delete": True}
NOTIFY = {"exchange_type": "fanout", "durable": True, "auto_delete": False}
HISTORY_PROBE_TTL = 10.0  # seconds an exchange found without a history stream is taken to have none
MAX_REMEMBERED = 10000  # exchanges remembered without history; then forgotten all at once


class ChannelTask:
    """Run a chain of operations on a fresh channel, then close it.

    ``steps`` are callables ``step(channel, proceed)``; each calls
    ``proceed(value)`` when its ``*-ok`` frame arrives.  ``on_done(result,
    error)`` is called exactly once: with the last step's value, or with the
    broker's reason when the channel is closed under the task.
    """

    def __init__(self, connection, steps, on_done):
        self.steps = list(steps)
        self.on_done = on_done
        self.finished = False
        self.channel = None
        connection.channel(on_open_callback=self._opened)

    def _opened(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._closed)
        self._proceed(None)

    def _proceed(self, value):
        if self.finished:
            return
        if not self.steps:
            self.finished = True
            self.channel.close()
            self.on_done(value, None)
            return
        step = self.steps.pop(0)
        step(self.channel, self._proceed)

    def _closed(self, channel, reason):
        if self.finished:
            return
        self.finished = True
        self.on_done(None, reason)

    def fail_if_pending(self, reason):
        if not self.finished:
            self._closed(self.channel, reason)


class Topology:
    """Cached declarations for one connection; lives on the I/O thread."""

    def __init__(self, connection, history=None):
        self.connection = connection
        self.history = history or HistoryPolicy()
        self.declared = set()
        self.waiting = {}
        self.histories = set()  # broadcast exchanges known to keep a history stream
        self.no_history = {}  # exchange -> monotonic time until which it is taken to keep none
        self.tasks = set()

    def forget(self, exchange):
        for key in [key for key in self.declared if key[0] == exchange]:
            self.declared.discard(key)

    def ensure_exchange(self, exchange, kind, callback):
        """Declare ``exchange`` as ``kind`` (BROADCAST or NOTIFY) once.

        ``callback(error)`` gets None when the exchange is usable.
        Concurrent requests for the same exchange share one declare.
        """
        key = (exchange, kind["durable"])
        if key in self.declared:
            callback(None)
            return
        waiters = self.waiting.setdefault(key, [])
        waiters.append(callback)
        if len(waiters) > 1:
            return

        def declare(channel, proceed):
            channel.exchange_declare(exchange, callback=proceed, **kind)

        def done(_result, reason):
            if reason is None:
                self.declared.add(key)
            error = None if reason is None else error_for_close(reason)
            for waiter in self.waiting.pop(key, []):
                waiter(error)

        if kind is BROADCAST and self.history.keeps(exchange):
            self._run([declare], lambda _result, reason: self._keep_history(exchange, reason, done))
        else:
            self._run([declare], done)

    def _keep_history(self, exchange, reason, done):
        """Bind the exchange's stream queue, then report the exchange usable.

        A stream declared earlier with other retention arguments answers 406:
        it is then bound as it is.  A stream that cannot be bound (e.g. not
        yet available right after a broker restart) fails the declaration,
        uncached: the event streams read only the stream, so a message it
        would miss reaches no viewer; the client retries (503) and the next
        declaration tries again.
        """
        if reason is not None:
            done(None, reason)
            return
        queue = self.history.queue(exchange)

        def declare(channel, proceed):
            channel.queue_declare(queue, durable=True, arguments=self.history.arguments(), callback=proceed)

        def declare_passive(channel, proceed):
            channel.queue_declare(queue, passive=True, callback=proceed)

        def bind(channel, proceed):
            channel.queue_bind(queue, exchange, callback=proceed)

        def bound(_result, stream_reason):
            if stream_reason is not None and reply_code(stream_reason) == PRECONDITION_FAILED:
                log.warning("history stream %r exists with other arguments; binding it as it is", queue)
                self._run([declare_passive, bind], bound_as_is)
                return
            bound_as_is(None, stream_reason)

        def bound_as_is(_result, stream_reason):
            if stream_reason is not None:
                log.warning("cannot keep the history of %r: %s", exchange, stream_reason)
            else:
                self.histories.add(exchange)
                self.no_history.pop(exchange, None)
            done(None, stream_reason)

        self._run([declare, bind], bound)

    def keeps_history(self, exchange, callback):
        """``callback(True, None)`` when ``exchange`` is a broadcast exchange with a history stream.

        Its stream queue is bound for good, so anything published to the exchange, an RPC request
        included, is stored and shown to every viewer: RPC asks here first.  Only names that match
        ``events_history`` are probed (a passive declare of the stream); a found stream is
        remembered, an absent one for ``HISTORY_PROBE_TTL`` seconds.
        """
        if not self.history.keeps(exchange) or exchange in self.histories:
            callback(exchange in self.histories, None)
            return
        now = time.monotonic()
        if self.no_history.get(exchange, 0.0) > now:
            callback(False, None)
            return
        queue = self.history.queue(exchange)

        def probe(channel, proceed):
            channel.queue_declare(queue, passive=True, callback=proceed)

        def done(_result, reason):
            if reason is None:
                self.histories.add(exchange)
                callback(True, None)
            elif reply_code(reason) == NOT_FOUND:
                if len(self.no_history) >= MAX_REMEMBERED:
                    self.no_history.clear()
                self.no_history[exchange] = time.monotonic() + HISTORY_PROBE_TTL
                callback(False, None)
            else:
                callback(None, error_for_close(reason))

        self._run([probe], done)

    def ensure_consumer_queue(self, exchange, queue, queue_type, callback):
        """Declare durable ``queue`` of ``queue_type`` bound to notify ``exchange``.

        ``callback((created, actual_type), error)``: ``created`` tells whether
        the queue is new; a queue that exists with another type is kept (and
        bound) as it is, and ``actual_type`` names that type.  The passive
        probe tells new from existing; the typed declare, on a channel of its
        own, either matches or names the existing type in its 406.
        """

        def after_exchange(error):
            if error is not None:
                callback(None, error)
                return

            def probe(channel, proceed):
                channel.queue_declare(queue, passive=True, callback=proceed)

            self._run([probe], lambda _ok, reason: declare(reason))

        def declare(probe_reason):
            if probe_reason is not None and reply_code(probe_reason) != NOT_FOUND:
                callback(None, error_for_close(probe_reason))
                return
            created = probe_reason is not None

            def typed_declare(channel, proceed):
                channel.queue_declare(
                    queue,
                    durable=True,
                    exclusive=False,
                    auto_delete=False,
                    arguments={"x-queue-type": queue_type},
                    callback=proceed,
                )

            def declared(_result, reason):
                if reason is None:
                    bind(created, queue_type)
                    return
                existing = existing_queue_type(reason)
                if existing is None:
                    callback(None, error_for_close(reason))
                else:
                    bind(False, existing)

            self._run([typed_declare], declared)

        def bind(created, actual_type):
            def queue_bind(channel, proceed):
                channel.queue_bind(queue, exchange, callback=proceed)

            def done(_result, reason):
                if reason is None:
                    callback((created, actual_type), None)
                else:
                    callback(None, error_for_close(reason))

            self._run([queue_bind], done)

        self.ensure_exchange(exchange, NOTIFY, after_exchange)

    def _run(self, steps, on_done):
        def finished(result, reason):
            self.tasks.discard(task)
            on_done(result, reason)

        task = ChannelTask(self.connection, steps, finished)
        self.tasks.add(task)

    def abort(self, reason):
        """The connection is gone: fail every declaration in flight."""
        for task in list(self.tasks):
            task.fail_if_pending(reason)
        self.tasks.clear()
