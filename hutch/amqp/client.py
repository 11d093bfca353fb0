"""The process's one AMQP connection, owned by an I/O thread.

pika connections are not thread-safe, so request threads never touch it:
they hand work to the I/O thread and wait for its answer (``handoff``,
whose ``HandOff`` the ``Broker`` is).  The thread starts lazily in the
process that serves, so a mod_wsgi fork never inherits a live socket; it
keeps heartbeats flowing, and reconnects with backoff, to the next node when
``amqp_url`` names a cluster (``nodes``).  Whatever was in flight on a lost
connection fails with ``BrokerUnavailable`` (503): a publish not confirmed is
never reported as done, and a call's reply-to dies with its connection, so
it can never be handed another call's reply.  Modelled on pika's
``examples/long_running_publisher.py``.  With ``publisher = direct`` (the
default) broadcast, notify and RPC calls go through ``direct_publisher`` on
a second connection instead; the exchanges they use are still declared here.
"""

import logging
import os
import threading
import time

from hutch import metrics
from hutch.amqp.connection import BatchingConnection
from hutch.amqp.direct_publisher import DirectPublisher
from hutch.amqp.handoff import HandOff
from hutch.amqp.nodes import Nodes, one_order
from hutch.amqp.outcomes import blocked, quiet_answered_closes
from hutch.amqp.publisher import ConfirmPublisher
from hutch.amqp.rpc import Call, RpcPool, broadcast_exchange
from hutch.amqp.topology import BROADCAST, NOTIFY, Topology
from hutch.errors import BrokerUnavailable, Unroutable

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 0.25
PIKA = "pika"  # this connection's name in the broker metrics (the direct publisher's: "direct")


class Broker(HandOff):
    """What the gateway's request threads may ask of RabbitMQ."""

    def __init__(
        self,
        amqp_url,
        publish_timeout=5.0,
        connect_timeout=5.0,
        heartbeat=30,
        reconnect_max_delay=10.0,
        retry_after=5,
        history=None,
        publisher="direct",
    ):
        self.amqp_urls = (amqp_url,) if isinstance(amqp_url, str) else tuple(amqp_url)
        self.heartbeat = heartbeat
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.retry_after = retry_after
        quiet_answered_closes()
        self.history = history  # HistoryPolicy: broadcast exchanges that get a stream queue
        # "direct": broadcast, notify and RPC calls on a connection of their own (direct_publisher),
        # amqps:// too; "pika": through the I/O thread's connection
        self.direct = publisher == "direct"
        self._lock = threading.Lock()
        self._reset()

    def _configure(self, parameters):
        parameters.heartbeat = self.heartbeat
        parameters.connection_attempts = 1
        parameters.socket_timeout = self.connect_timeout
        parameters.stack_timeout = self.connect_timeout  # TCP and AMQP handshake: a frozen node accepts TCP
        parameters.client_properties = {"connection_name": f"hutch pid {os.getpid()}"}

    def _reset(self):
        self._pid = os.getpid()
        # shuffled in each process, so the processes spread over the cluster's nodes; the same
        # order for the direct publisher's connection
        shuffle = one_order(len(self.amqp_urls))
        self._nodes = Nodes(self.amqp_urls, self._configure, self.reconnect_max_delay, shuffle)
        self._thread = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._connection = None
        self._blocked = False
        self._opened_before = False  # for the reconnects metric
        self._state = None  # per-connection state, I/O thread only
        self._reset_handoff()
        self._publisher = None
        if self.direct:
            nodes = Nodes(self.amqp_urls, self._configure, self.reconnect_max_delay, shuffle)
            self._publisher = DirectPublisher(
                nodes,
                self._declare_exchange,
                publish_timeout=self.publish_timeout,
                connect_timeout=self.connect_timeout,
                heartbeat=self.heartbeat,
                retry_after=self.retry_after,
            )

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Start the I/O thread if this process has none (first use, or after fork).

        Called on every request: the common case (running, same process) takes
        no lock, so request threads do not queue on each other here.
        """
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hutch-amqp", daemon=True)
                self._thread.start()

    def close(self, timeout=5.0):
        """Close the connection and stop the I/O thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stopping.set()
        if self._publisher is not None:
            self._publisher.close(timeout)
        connection = self._connection
        if connection is not None:
            try:
                connection.ioloop.add_callback_threadsafe(self._close_connection)
            except Exception:
                log.debug("the I/O loop had already stopped", exc_info=True)
        thread.join(timeout)

    def _close_connection(self):
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is not None:
            self._connection.ioloop.stop()

    def _run(self):
        nodes = self._nodes
        while not self._stopping.is_set():
            self._opened = False
            opened_at = time.monotonic()
            connection = BatchingConnection(
                nodes.current,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_close,
            )
            self._open_loop(connection)
            connection.ioloop.start()
            self._end_loop(connection)
            if self._stopping.is_set():
                break
            pause = nodes.next_pause(self._opened, time.monotonic() - opened_at)
            log.info("connecting to the broker at %s in %.1f s", nodes.describe(nodes.current), pause)
            self._stopping.wait(pause)

    def _on_open(self, connection):
        self._opened = True
        log.info("connected to the broker at %s", self._nodes.describe(self._nodes.current))
        metrics.broker_connected(PIKA, reconnect=self._opened_before)
        self._opened_before = True
        self._blocked = False
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        topology = Topology(connection, self.history)
        state = ConnectionState(
            topology=topology,
            broadcast=ConfirmPublisher(connection, topology, BROADCAST, self.publish_timeout, True),
            notify=ConfirmPublisher(connection, topology, NOTIFY, self.publish_timeout, False),
            rpc=RpcPool(connection),
        )
        self._state = state
        opened = []

        def one_ready():
            opened.append(True)
            if len(opened) == 2:
                self._ready.set()

        state.broadcast.open(one_ready)
        state.notify.open(one_ready)
        connection.ioloop.call_later(SWEEP_INTERVAL, self._sweep)

    def _on_open_error(self, connection, error):
        where = self._nodes.describe(self._nodes.current)
        log.warning("cannot connect to the broker at %s: %s", where, error)
        metrics.broker_connect_failed(PIKA)
        connection.ioloop.stop()

    def _on_close(self, connection, reason):
        self._ready.clear()
        metrics.broker_disconnected(PIKA)
        state, self._state = self._state, None
        if not self._stopping.is_set():
            log.warning("connection to the broker lost: %s", reason)
        if state is not None:
            error = BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            state.abort(error, reason)
        connection.ioloop.stop()

    def _on_blocked(self, connection, frame):
        log.warning("the broker blocked publishing (resource alarm)")
        metrics.broker_blocked(PIKA, True)
        self._blocked = True
        if self._state is not None:
            error = blocked()
            self._state.broadcast.fail_in_flight(error)
            self._state.notify.fail_in_flight(error)
            self._state.rpc.fail_in_flight(error)

    def _on_unblocked(self, connection, frame):
        log.info("the broker unblocked publishing")
        metrics.broker_blocked(PIKA, False)
        self._blocked = False

    def _sweep(self):
        state = self._state
        if state is None:
            return
        now = time.monotonic()
        state.broadcast.expire(now)
        state.notify.expire(now)
        self._connection.ioloop.call_later(SWEEP_INTERVAL, self._sweep)

    # -- what request threads call -----------------------------------------

    def _declare_exchange(self, exchange, kind, again):
        """Declare for the direct publisher, on this connection (``again``: the broker said it is gone)."""

        def work(state, resolve):
            if again:
                state.topology.forget(exchange)
            state.topology.ensure_exchange(exchange, kind, lambda error: resolve(None, error))

        self._submit(work, self.publish_timeout)

    def broadcast(self, exchange, message):
        """Publish to a transient fanout exchange; return whether a queue got it."""
        if self.direct:
            self.start()
            return self._publisher.publish("broadcast", BROADCAST, exchange, message)

        def work(state, resolve):
            state.broadcast.publish(state.broadcast.new_item(exchange, message, resolve))

        return self._submit(work, self.publish_timeout)

    def notify(self, exchange, message):
        """Publish persistently; return only once the broker confirmed it.

        Raises ``Unroutable`` when no queue is bound (nothing was stored).
        """
        if self.direct:
            self.start()
            if not self._publisher.publish("notify", NOTIFY, exchange, message):
                raise Unroutable(f"No queue is bound to exchange {exchange!r}; nothing was stored.")
            return

        def work(state, resolve):
            def done(routed, error):
                if error is None and not routed:
                    error = Unroutable(f"No queue is bound to exchange {exchange!r}; nothing was stored.")
                resolve(routed, error)

            state.notify.publish(state.notify.new_item(exchange, message, done))

        self._submit(work, self.publish_timeout)

    def publish_batch(self, idiom, exchange, messages):
        """Publish a batch (broadcast or notify) and wait for every confirm: one outcome per message,
        in order: True (a queue got it), False (broadcast: none did), or the ``HutchError`` it failed
        with (notify's unroutable is ``Unroutable``).  Raises, with nothing published, where one
        publish would before it is sent (broker unreachable or blocked, exchange of another type).
        """
        kind = BROADCAST if idiom == "broadcast" else NOTIFY
        if self.direct:
            self.start()
            outcomes = self._publisher.publish_many(idiom, kind, exchange, messages)
        else:
            outcomes = self._publish_batch_pika(idiom, exchange, messages)
        if idiom == "notify":
            unroutable = Unroutable(f"No queue is bound to exchange {exchange!r}; nothing was stored.")
            outcomes = [unroutable if outcome is False else outcome for outcome in outcomes]
        return outcomes

    def _publish_batch_pika(self, idiom, exchange, messages):
        """The I/O thread publishes the whole batch in one hand-off; every message keeps its own
        confirm (``ConfirmPublisher``), and the request thread wakes when the last is settled.
        The exchange is declared first (known ones at once), so a clash fails the whole batch, as
        on the direct path."""
        self._declare_exchange(exchange, BROADCAST if idiom == "broadcast" else NOTIFY, again=False)
        outcomes = [None] * len(messages)
        state = {"remaining": len(messages), "handed": False}

        def work(connection_state, resolve):
            state["handed"] = True
            publisher = getattr(connection_state, idiom)
            for index, message in enumerate(messages):

                def done(routed, error, index=index):  # on the I/O thread, once per message
                    outcomes[index] = routed if error is None else error
                    state["remaining"] -= 1
                    if not state["remaining"]:
                        resolve(outcomes, None)

                publisher.publish(publisher.new_item(exchange, message, done, confirmed_only=True))

        try:
            return self._submit(work, self.publish_timeout)
        except BrokerUnavailable as error:
            if not state["handed"]:
                raise
            late = BrokerUnavailable("The broker did not confirm the message in time.", self.retry_after)
            late.headers = error.headers
            return [late if outcome is None else outcome for outcome in list(outcomes)]

    def ensure_consumer_queue(self, exchange, queue, queue_type):
        """Declare durable ``queue`` (``quorum`` or ``classic``) bound to notify ``exchange``.

        Returns ``(created, actual_type)``: an existing queue keeps its type.
        """

        def work(state, resolve):
            state.topology.ensure_consumer_queue(exchange, queue, queue_type, resolve)

        return self._submit(work, self.publish_timeout)

    def call(self, exchange, routing_key, message, timeout):
        """Publish a request and wait for its reply (a ``Reply``).

        Never to a broadcast exchange that keeps history: its stream would store the request and
        every viewer would see it (``no_responder`` instead, nothing published).
        """
        if self.history is not None and self.history.keeps(exchange):

            def probe(state, resolve):
                state.topology.keeps_history(exchange, resolve)

            if self._submit(probe, self.publish_timeout):
                metrics.rpc_no_responder()
                raise broadcast_exchange(exchange)
        if self.direct:  # from this thread, on the direct publisher's connection
            self.start()
            return self._publisher.call(exchange, routing_key, message, timeout)

        def work(state, resolve):
            state.rpc.call(Call(exchange, routing_key, message, timeout, resolve))

        return self._submit(work, timeout)

    def is_connected(self):
        """For /health: every connection this process serves requests on is open and unblocked.

        With ``publisher = direct`` that is the direct publisher's too (which carries broadcast,
        notify and RPC), so a balancer takes a process out of rotation when either is down.
        """
        self.start()
        deadline = time.monotonic() + min(self.connect_timeout, 2.0)
        if not self._ready.wait(deadline - time.monotonic()) or self._blocked:
            return False
        return self._publisher is None or self._publisher.is_connected(max(0.0, deadline - time.monotonic()))


class ConnectionState:
    """Everything that lives and dies with one connection."""

    def __init__(self, topology, broadcast, notify, rpc):
        self.topology = topology
        self.broadcast = broadcast
        self.notify = notify
        self.rpc = rpc

    def abort(self, error, reason):
        self.broadcast.closing = self.notify.closing = True
        self.topology.abort(reason)
        self.broadcast.fail_in_flight(error)
        self.notify.fail_in_flight(error)
        self.rpc.abort(error)
