"""Request threads handing work to the I/O thread that owns the pika connection.

pika connections are not thread-safe, so request threads never touch one:
they queue work for the I/O thread, wake it with ``add_callback_threadsafe``
(the one thread-safe pika call) only when no wake-up is pending already, and
wait on a ``Waiter`` (a bare lock).  The I/O thread runs everything queued
since its last wake-up in one turn, and sends the frames of all of it with
one write (``connection.BatchingConnection.batched_writes``).  Work handed to
a loop that stops before running it fails with ``BrokerUnavailable``.
"""

import collections
import functools
import logging
import threading

from hutch.amqp.outcomes import blocked
from hutch.errors import BrokerUnavailable

log = logging.getLogger(__name__)

GRACE = 2.0  # extra time a request thread waits beyond the I/O thread's own timers


class HandOff:
    """The hand-off of ``client.Broker``, whose I/O thread calls ``_open_loop`` and ``_end_loop``
    around each connection's loop.  The Broker keeps ``start()``, ``connect_timeout``,
    ``retry_after``, ``_ready`` (set while the connection is open), ``_blocked``, ``_connection``
    and ``_state`` (the open connection's ``ConnectionState``, None between connections)."""

    def _reset_handoff(self):
        self._handoff = threading.Lock()  # orders hand-offs against the end of an I/O loop
        self._loop_open = False
        self._handed = collections.deque()  # (run, waiter) handed to the running loop, not run yet

    def _open_loop(self, connection):
        """I/O thread, before ``connection``'s loop starts: work may be handed to it from now on."""
        with self._handoff:
            self._connection = connection
            self._loop_open = True

    def _end_loop(self, connection):
        """Fail the work handed to a loop that stopped before running it; release the loop."""
        with self._handoff:
            self._loop_open = False
            orphans, self._handed = self._handed, collections.deque()
        for _run, waiter in orphans:
            waiter.resolve(None, BrokerUnavailable("The connection to the broker was lost."))
        connection.ioloop.close()

    def _submit(self, work, wait):
        """Run ``work(state, resolve)`` on the I/O thread; wait for ``resolve``."""
        self.start()
        # is_set() first: Event.wait takes the Event's lock even when the flag is set.
        ready = self._ready.is_set() or self._ready.wait(
            self.connect_timeout if self._connection is None else 0.5
        )
        if not ready:
            raise BrokerUnavailable("The message broker is unreachable.", self.retry_after)
        if self._blocked:
            raise blocked(self.retry_after)
        waiter = Waiter()
        run = functools.partial(self._run_handed, work, waiter.resolve)
        with self._handoff:
            if not self._loop_open:  # between connections: nothing would ever run ``run``
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            self._handed.append((run, waiter))
            if len(self._handed) == 1:  # no drain pending: one wake-up for all that queues up
                self._connection.ioloop.add_callback_threadsafe(self._drain)
        if not waiter.wait(wait + GRACE):
            raise BrokerUnavailable("The broker did not answer in time.", self.retry_after)
        error = waiter.error
        if error is None:
            return waiter.value
        if isinstance(error, BrokerUnavailable):
            error.headers = [("Retry-After", str(self.retry_after))]
        raise error

    def _run_handed(self, work, resolve):
        """I/O thread: run one piece of handed work, unless the connection went or got blocked
        after the request thread looked (Connection.Blocked read in the same loop turn)."""
        state = self._state
        if state is None:
            resolve(None, BrokerUnavailable("The connection to the broker was lost."))
            return
        if self._blocked:
            resolve(None, blocked())
            return
        try:
            work(state, resolve)
        except Exception as exc:  # a pika error must not kill the I/O thread
            log.exception("broker operation failed")
            resolve(None, BrokerUnavailable(f"The broker operation failed: {exc}"))

    def _drain(self):
        """I/O thread: run the work handed over since the last drain; send its frames at once."""
        with self._handoff:
            batch, self._handed = self._handed, collections.deque()
        with self._connection.batched_writes():
            for run, _waiter in batch:
                run()


class Waiter:
    """A request thread's answer from the I/O thread.

    A bare lock that the I/O thread releases: a Future builds a Condition
    (an RLock and a waiter list) per request and notifies it.  ``resolve``
    runs on the I/O thread only; the first call wins.
    """

    __slots__ = ("_lock", "error", "resolved", "value")

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()
        self.resolved = False
        self.value = self.error = None

    def resolve(self, value, error):
        if not self.resolved:
            self.resolved = True
            self.value, self.error = value, error
            self._lock.release()

    def wait(self, timeout):
        return self._lock.acquire(timeout=timeout)
