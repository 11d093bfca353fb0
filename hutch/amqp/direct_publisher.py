"""Confirmed publishing for broadcast and notify without pika's I/O loop.

Handing each publish to pika's I/O thread costs more than the publish:
the wake-up, epoll switching the socket to write-readiness and back, and
an extra failing ``recv`` per read.  Here the request thread does the work
itself: it encodes its frames, takes the next delivery tag and queues the
bytes under one lock; whoever finds no send in progress writes everything
queued with one ``sendall``.  One reader thread per process blocks in
``recv``, decodes Ack/Nack/Return and releases the waiting request threads;
it also answers heartbeats and closes, and reconnects (to the next node of
a cluster) with the back-off of ``nodes``.

The guarantees are those of the pika path (``publisher.ConfirmPublisher``):
mandatory publishes on two confirm-mode channels (broadcast, notify); a 202
only after the broker's ack; a Basic.Return marks its publish unroutable; a
lost or closed connection fails every publish in flight with 503 at once; a
Connection.Blocked fails them and refuses new ones until unblocked; a
publish to an exchange the broker reports gone is declared again and sent
again.  Declarations stay on the pika connection (``Broker``), which also
keeps subscriptions.  RPC calls run here too, on channels of their own
after the two confirm channels (``direct_rpc``): the request thread sends
its call and the reader releases it with the reply.  On ``amqps://`` the
socket stays plain and TLS runs on memory BIOs under the same lock (``tls``):
an ``ssl.SSLSocket`` cannot be read and written by two threads at once.  The
plain path does no extra work per frame: the outbox on a TLS connection is
a ``tls.SealingOutbox``, whose ``append`` encrypts, chosen once per connection.
"""

import contextlib
import dataclasses
import functools
import logging
import os
import socket
import struct
import threading
import time

from pika import spec

from hutch import metrics
from hutch.amqp import wire
from hutch.amqp.confirms import ConfirmLedger, Resend
from hutch.amqp.direct_rpc import NoChannel, RpcCall, RpcChannels
from hutch.amqp.outcomes import blocked, missing_exchange
from hutch.amqp.tls import BlockingTls, TlsSession
from hutch.errors import BrokerUnavailable, HutchError, NoResponder, PublishNacked, RpcTimeout

log = logging.getLogger(__name__)

CLIENT_FRAME_MAX = spec.FRAME_MAX_SIZE  # what pika proposes (131072)
CHANNELS_NEEDED = 2  # broadcast's and notify's confirm channels; RPC channels are numbered after them
CHANNEL_MAX = 2047  # what the client proposes (RabbitMQ's default limit): the rest is for RPC calls
MAX_ATTEMPTS = 3  # an exchange that keeps disappearing is a 503
READ_SIZE = 65536
IDLE_TICK = 1.0  # seconds a read blocks when heartbeats are off, to notice close()
DIRECT = "direct"  # this connection's name in the broker metrics (pika's: "pika")
CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "publisher_confirms": True,
}


class ConnectionFailed(Exception):
    """The handshake was refused or the broker closed the connection."""


@dataclasses.dataclass(eq=False, slots=True)
class Publish:
    """One message waiting for its confirm; ``resolve`` releases the waiting request thread."""

    exchange: str
    message_id: str
    lock: object
    returned: bool = False
    routed: object = None
    error: object = None
    confirmed_only: bool = False  # a batch's: routed only on the broker's ack (``ConfirmLedger.closed``)

    def resolve(self, routed, error):
        self.routed, self.error = routed, error
        self.lock.release()


class Countdown:
    """What a batch's publishes release: the waiting request thread wakes once all are settled.

    Each publish is settled once, by the reader or by the request thread that gave up on it
    (whoever took it out of ``pending``), so ``release`` may come from either thread.
    """

    def __init__(self, count):
        self.remaining = count
        self._count = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()

    def release(self):
        with self._count:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self._done.release()

    def acquire(self, timeout=-1):
        return self._done.acquire(timeout=timeout)


class ConfirmChannel(ConfirmLedger):
    """One confirm-mode channel of the direct connection: its number, whether it is open, and
    its ledger (``confirms.ConfirmLedger``).  Runs under the publisher's lock."""

    def __init__(self, number, idiom, trust_unconfirmed):
        self.number = number
        self.idiom = idiom
        self.opened = threading.Event()
        super().__init__(trust_unconfirmed)

    def reset(self):
        self.opened.clear()
        super().reset()


class DirectPublisher:
    """One AMQP connection per process for confirmed publishes; see the module docstring.

    ``nodes`` is a ``nodes.Nodes``; ``declare(exchange, kind, again)``
    declares an exchange through the pika connection (``again``: the broker
    said it is gone).  ``connect(address, timeout)`` makes the socket
    (``socket.create_connection``; a test passes its own).
    """

    def __init__(
        self,
        nodes,
        declare,
        publish_timeout=5.0,
        connect_timeout=5.0,
        heartbeat=30,
        retry_after=5,
        connect=socket.create_connection,
    ):
        self.nodes = nodes
        self.declare = declare
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.retry_after = retry_after
        self.connect = connect
        self.channels = {
            "broadcast": ConfirmChannel(1, "broadcast", trust_unconfirmed=True),
            "notify": ConfirmChannel(2, "notify", trust_unconfirmed=False),
        }
        self._by_number = {channel.number: channel for channel in self.channels.values()}
        self.rpc = RpcChannels(first=CHANNELS_NEEDED + 1)
        self._lock = threading.Lock()  # channels' tags and pending, the outbox, the socket
        self._thread = None
        self._stopping = threading.Event()
        self._ready = threading.Event()  # the connection is open (its channels may still be opening)
        self._connected_once = False
        self._sock = None
        self._generation = 0  # counts connections, so a publish never lands on a newer one
        self._outbox = []  # a list, or a tls.SealingOutbox on a TLS connection
        self._new_outbox = list  # makes the next one: chosen per connection
        self._sending = False
        self._blocked = False
        self._frame_max = CLIENT_FRAME_MAX
        self._declared = set()  # (exchange, idiom) declared since the last connection was lost
        self._last_sent = self._last_received = 0.0

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Start the reader thread (connect lazily, on first use).

        Fork safety is the owner's: ``Broker`` makes a new publisher in a forked child.
        """
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hutch-amqp-publish", daemon=True)
                self._thread.start()

    def close(self, timeout=5.0):
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        sock = self._sock
        if sock is not None:  # the broker answers Close-Ok and closes the socket: the reader ends
            self._send(wire.method(0, spec.Connection.Close(200, "Normal shutdown", 0, 0)))
            thread.join(min(timeout, 1.0))
            _shutdown(sock)
        thread.join(timeout)

    # -- what request threads call -----------------------------------------

    def publish(self, idiom, kind, exchange, message):
        """Publish mandatory on the ``idiom`` channel; return whether a queue got it (after the ack).

        The owner calls ``start`` first (``Broker`` does on every request, and makes a new
        publisher after a fork); until the connection is open this starts it too.
        """
        started = time.monotonic()
        channel = self.channels[idiom]
        deadline = None  # publish_timeout bounds everything after the connection is there
        for _attempt in range(MAX_ATTEMPTS):
            key = (exchange, idiom)
            if key not in self._declared:
                self.declare(exchange, kind, again=False)
                self._declared.add(key)
            self._wait_ready()
            if deadline is None:
                deadline = time.monotonic() + self.publish_timeout
            try:
                routed = self._publish_once(channel, exchange, message, deadline)
            except Resend as resend:
                if resend.missing == exchange:
                    log.info("exchange %r has gone; declaring it again", exchange)
                    self._declared.discard(key)
                    self.declare(exchange, kind, again=True)
                    self._declared.add(key)
                continue
            metrics.publish_confirmed(idiom, time.monotonic() - started, routed)
            return routed
        raise BrokerUnavailable("The exchange keeps disappearing; retry later.", self.retry_after)

    def _publish_once(self, channel, exchange, message, deadline):
        if not channel.opened.is_set() and not channel.opened.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable("The broker did not open the channel in time.", self.retry_after)
        if self._blocked:
            raise blocked(self.retry_after)
        generation = self._generation
        data = wire.publish(channel.number, exchange, message.body, message.properties, self._frame_max)
        lock = threading.Lock()
        lock.acquire()
        item = Publish(exchange, message.properties.message_id, lock)
        with self._lock:
            if generation != self._generation:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if not channel.opened.is_set():  # closed by the broker meanwhile, and being opened again
                raise Resend(None)
            tag = channel.add(item)
            self._outbox.append(data)
            send = self._claim_send()
        if send:
            self._flush()
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            with self._lock:
                gave_up = channel.pending.get(tag) is item and channel.pending.pop(tag)
            if gave_up:
                raise BrokerUnavailable("The broker did not confirm the message in time.", self.retry_after)
            lock.acquire()  # the reader took it out of pending: its outcome is being set
        if item.error is not None:
            raise item.error
        return item.routed

    def publish_many(self, idiom, kind, exchange, messages):
        """Publish ``messages`` mandatory on the ``idiom`` channel under one lock hold, then wait for
        every confirm.  Returns one outcome per message, in order: whether a queue got it (after
        its ack) or the ``HutchError`` it failed with.  Every publish is ``confirmed_only``: a
        channel closed before the ack fails it, even on broadcast's channel.

        Raises, with nothing sent, where one publish would (broker unreachable or blocked, the
        exchange not declarable); once sent, a failure is a publish's outcome.
        """
        started = time.monotonic()
        channel = self.channels[idiom]
        key = (exchange, idiom)
        outcomes = [None] * len(messages)
        todo = list(range(len(messages)))
        deadline = None
        for attempt in range(MAX_ATTEMPTS):
            try:
                if key not in self._declared:
                    self.declare(exchange, kind, again=attempt > 0)
                    self._declared.add(key)
                self._wait_ready()
                if deadline is None:
                    deadline = time.monotonic() + self.publish_timeout
                items = self._publish_many_once(channel, exchange, [messages[i] for i in todo], deadline)
            except Resend:  # the channel reopened before anything was sent: send all of them again
                continue
            except HutchError as error:  # before anything of this attempt was sent
                if attempt == 0:
                    raise
                items = [error] * len(todo)
            again = []
            for index, item in zip(todo, items, strict=True):
                error = item if isinstance(item, Exception) else item.error
                if isinstance(error, Resend):
                    if error.missing == exchange:
                        self._declared.discard(key)
                    again.append(index)
                else:
                    outcomes[index] = item.routed if error is None else error
            todo = again
            if not todo:
                break
            log.info(
                "exchange %r has gone; declaring it again for %d publishes of a batch", exchange, len(todo)
            )
        for index in todo:
            outcomes[index] = BrokerUnavailable(
                "The exchange keeps disappearing; retry later.", self.retry_after
            )
        confirmed = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
        metrics.publish_confirmed_many(
            idiom, time.monotonic() - started, len(confirmed), confirmed.count(False)
        )
        return outcomes

    def _publish_many_once(self, channel, exchange, messages, deadline):
        """Send ``messages`` in one lock hold and wait for all their confirms; their ``Publish`` items."""
        if not channel.opened.is_set() and not channel.opened.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable("The broker did not open the channel in time.", self.retry_after)
        if self._blocked:
            raise blocked(self.retry_after)
        generation = self._generation
        frame_max, number = self._frame_max, channel.number
        data = wire.publish_all(number, exchange, messages, frame_max)
        countdown = Countdown(len(messages))
        items = [Publish(exchange, m.properties.message_id, countdown, confirmed_only=True) for m in messages]
        with self._lock:
            if generation != self._generation:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if not channel.opened.is_set():
                raise Resend(None)
            tags = [channel.add(item) for item in items]
            self._outbox.append(data)
            send = self._claim_send()
        if send:
            self._flush()
        if not countdown.acquire(timeout=max(0.0, deadline - time.monotonic())):
            pending = channel.pending
            with self._lock:
                given_up = [
                    pending.pop(tag)
                    for tag, item in zip(tags, items, strict=True)
                    if pending.get(tag) is item
                ]
            late = BrokerUnavailable("The broker did not confirm the message in time.", self.retry_after)
            for item in given_up:
                item.resolve(None, late)
            countdown.acquire()  # the reader settles the ones it took out of pending
        return items

    def call(self, exchange, routing_key, message, timeout):
        """Publish an RPC request and wait for its reply (an ``rpc.Reply``), as ``rpc`` promises.

        One lock hold takes a channel (an idle one, or a new one opened in the same write) and
        queues the request; the reader releases ``call.lock`` with the reply or the failure.
        """
        self._wait_ready()
        call = RpcCall.new(exchange, routing_key, timeout)
        properties = call.properties(message.properties)
        with self._lock:
            if self._sock is None:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if self._blocked:  # under the lock: never queued after the reader failed those in flight
                raise blocked(self.retry_after)
            try:
                channel, opening = self.rpc.take(call)
            except NoChannel:
                raise BrokerUnavailable("Too many calls in flight; retry later.", self.retry_after) from None
            data = wire.publish(
                channel.number, exchange, message.body, properties, self._frame_max, routing_key=routing_key
            )
            send = self._enqueue(opening + data if opening else data)
        if send:
            self._flush()
        if not call.lock.acquire(timeout=timeout):
            with self._lock:
                gave_up, closing = self.rpc.give_up(channel, call)
                send = gave_up and self._enqueue(closing)
            if send:
                self._flush()
            if gave_up:
                metrics.rpc_timed_out()
                raise RpcTimeout(f"No reply within {timeout:g} s.")
            call.lock.acquire()  # the reader took the call: its outcome is being set
        error = call.error
        if error is None:
            metrics.rpc_replied(time.monotonic() - call.started)
            return call.reply
        if isinstance(error, NoResponder):
            metrics.rpc_no_responder()
        elif isinstance(error, BrokerUnavailable):
            error.headers = [("Retry-After", str(self.retry_after))]
        raise error

    def is_connected(self, timeout):
        """The connection is open (waiting up to ``timeout`` for it) and not blocked."""
        self.start()
        return (self._ready.is_set() or self._ready.wait(timeout)) and not self._blocked

    def _wait_ready(self):
        """Wait for the connection: ``connect_timeout`` until it first opened, then half a second."""
        if not self._ready.is_set():
            self.start()
            if not self._ready.wait(0.5 if self._connected_once else self.connect_timeout):
                raise BrokerUnavailable("The message broker is unreachable.", self.retry_after)

    # -- writing -------------------------------------------------------------

    def _send(self, data):
        """Queue ``data`` and send it, unless a send in progress will take it along."""
        with self._lock:
            send = self._enqueue(data)
        if send:
            self._flush()

    def _enqueue(self, data):
        """Under the lock: queue ``data``; True when the caller must ``_flush`` (no send in progress).

        Frames whose order matters against other threads' (a channel's Close-Ok before its number
        carries a new Channel.Open) are queued in the same lock hold as the state change.
        """
        if self._sock is None:
            return False
        self._outbox.append(data)
        return self._claim_send()

    def _enqueue_sealed(self, records):
        """Under the lock: queue TLS records made by the reader's decrypt (nothing to encrypt)."""
        if self._sock is None:
            return False
        self._outbox.append_sealed(records)
        return self._claim_send()

    def _claim_send(self):
        """Under the lock, after queueing: True when no send is in progress (the caller flushes)."""
        if self._sending:
            return False
        self._sending = True
        return True

    def _flush(self):
        """Write everything queued, in order, one ``sendall`` per round, until the outbox is empty."""
        while True:
            with self._lock:
                sock, outbox = self._sock, self._outbox
                if not outbox or sock is None:
                    outbox.clear()
                    self._sending = False
                    return
                self._outbox = self._new_outbox()
            try:
                sock.sendall(outbox[0] if len(outbox) == 1 else b"".join(outbox))
            except OSError as error:  # the reader sees the socket fail too and fails what is in flight
                log.warning("sending to the broker failed: %s", error)
                _shutdown(sock)
                with self._lock:
                    self._outbox = []
                    self._sending = False
                return
            self._last_sent = time.monotonic()

    # -- the reader thread ----------------------------------------------------

    def _run(self):
        nodes = self.nodes
        while not self._stopping.is_set():
            parameters = nodes.current
            opened_at = time.monotonic()
            opened = False
            reconnect = self._connected_once
            sock = None
            try:
                sock, decoder, receive = self._open(parameters)
                opened = True
                metrics.broker_connected(DIRECT, reconnect)
                self._read(receive, decoder)
            except (OSError, ConnectionFailed, struct.error, ValueError) as error:
                if not self._stopping.is_set():
                    where = nodes.describe(parameters)
                    log.warning("publishing connection to the broker at %s lost: %s", where, error)
            except Exception:  # never let the reader die: publishing would hang for good
                log.exception("the publishing connection's reader failed")
            finally:
                self._lost(sock)
                if opened:
                    metrics.broker_disconnected(DIRECT)
                elif not self._stopping.is_set():
                    metrics.broker_connect_failed(DIRECT)
            if self._stopping.is_set():
                break
            pause = nodes.next_pause(opened, time.monotonic() - opened_at)
            self._stopping.wait(pause)

    def _open(self, parameters):
        """TCP, TLS for amqps://, the AMQP handshake (Start/StartOk, Tune/TuneOk, Open), then the two
        channels.  Returns the socket, the decoder and what the reader calls to read (``recv``)."""
        sock = self.connect((parameters.host, parameters.port), self.connect_timeout)
        session = None
        link = sock  # what the handshake writes to and reads from
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if parameters.ssl_options is not None:
                session = TlsSession(parameters.ssl_options, parameters.host, self.retry_after)
                session.handshake(sock)
                link = BlockingTls(sock, session)
            decoder = wire.Decoder()
            link.sendall(wire.PROTOCOL_HEADER)
            start = _expect(link, decoder, spec.Connection.Start)
            if b"PLAIN" not in start.mechanisms.split():
                raise ConnectionFailed(f"the broker offers no PLAIN login ({start.mechanisms!r})")
            credentials = parameters.credentials
            response = f"\0{credentials.username}\0{credentials.password}"
            properties = {
                "product": "hutch",
                "capabilities": CAPABILITIES,
                "connection_name": f"hutch pid {os.getpid()} publisher",
            }
            link.sendall(wire.method(0, spec.Connection.StartOk(properties, "PLAIN", response, "en_US")))
            tune = _expect(link, decoder, spec.Connection.Tune)
            channel_max = _negotiate(CHANNEL_MAX, tune.channel_max)
            if channel_max < CHANNELS_NEEDED:
                raise ConnectionFailed(f"the broker allows {channel_max} channel(s); publishing needs 2")
            frame_max = _negotiate(CLIENT_FRAME_MAX, tune.frame_max)
            heartbeat = tune.heartbeat if self.heartbeat is None else self.heartbeat
            link.sendall(
                wire.method(0, spec.Connection.TuneOk(channel_max, frame_max, heartbeat))
                + wire.method(0, spec.Connection.Open(parameters.virtual_host))
            )
            _expect(link, decoder, spec.Connection.OpenOk)
        except BaseException:
            sock.close()
            raise
        # Reads block; a quiet socket wakes the reader at the heartbeat's pace.  Sends give up
        # after publish_timeout (the broker stopped reading): the request then answers 503.
        sock.settimeout(None)
        tick = heartbeat / 2 if heartbeat else IDLE_TICK
        _set_timeout(sock, socket.SO_RCVTIMEO, tick)
        _set_timeout(sock, socket.SO_SNDTIMEO, self.publish_timeout)
        self._heartbeat = heartbeat
        now = time.monotonic()
        with self._lock:
            self._generation += 1
            self._frame_max = frame_max
            self.rpc.reset(channel_max)
            self._new_outbox = list if session is None else session.outbox
            self._outbox = self._new_outbox()
            self._sock = sock
            self._blocked = False
            self._last_sent = self._last_received = now
        for channel in self.channels.values():  # before any request's frames: the order is always the same
            self._open_channel(channel)
        self._ready.set()
        self._connected_once = True
        log.info("publishing connection open to %s", self.nodes.describe(parameters))
        receive = sock.recv if session is None else functools.partial(self._receive_tls, sock, session)
        return sock, decoder, receive

    def _receive_tls(self, sock, session, size):
        """The reader's ``recv`` on a TLS connection: plaintext, None when the records read held none
        (yet), b"" at EOF or after the broker's close_notify."""
        if session.closed:
            return b""
        data = sock.recv(size)
        if not data:
            return b""
        send = False
        with self._lock:
            plaintext, reply = session.decrypt(data)
            if reply:  # behind every record queued so far, as OpenSSL made them
                send = self._enqueue_sealed(reply)
        if send:
            self._flush()
        return plaintext or None

    def _open_channel(self, channel):
        number = channel.number
        self._send(wire.method(number, spec.Channel.Open()) + wire.method(number, spec.Confirm.Select()))

    def _read(self, receive, decoder):
        returning = None  # (channel, Basic.Return, header or None, body bytes so far) of a return being read
        heartbeat = self._heartbeat
        while not self._stopping.is_set():
            try:
                data = receive(READ_SIZE)
            except BlockingIOError:  # SO_RCVTIMEO: nothing arrived for a tick
                data = None
            now = time.monotonic()
            if data == b"":
                raise ConnectionFailed("the broker closed the socket")
            if data:
                self._last_received = now
                decoder.feed(data)
            frames = decoder.frames  # also what arrived with the handshake's last frame
            while frames:
                returning = self._on_frame(frames.popleft(), returning)
            if heartbeat:
                if now - self._last_received > 2 * heartbeat:
                    raise ConnectionFailed(f"no heartbeat from the broker for {2 * heartbeat} s")
                if now - self._last_sent >= heartbeat / 2:
                    self._last_sent = now
                    self._send(wire.HEARTBEAT)

    def _on_frame(self, frame, returning):
        """Handle one frame; returns the state of a Basic.Return being read (None between returns)."""
        if frame.channel_number > CHANNELS_NEEDED:
            self._on_rpc_frame(frame)
            return returning
        if returning is not None and frame.channel_number == returning[0].number:
            return self._on_return_content(frame, returning)
        method = getattr(frame, "method", None)
        if method is None:  # heartbeat (or content outside a return: ignored)
            return returning
        channel = self._by_number.get(frame.channel_number)
        if isinstance(method, spec.Basic.Ack):
            self._settle(channel, method, None)
        elif isinstance(method, spec.Basic.Nack):
            self._settle(channel, method, PublishNacked())
        elif isinstance(method, spec.Basic.Return):
            return (channel, method, None, [])
        elif isinstance(method, spec.Confirm.SelectOk):
            channel.opened.set()
        elif isinstance(method, spec.Channel.Close):
            self._on_channel_close(channel, method)
        elif isinstance(method, spec.Connection.Blocked):
            self._on_blocked(method)
        elif isinstance(method, spec.Connection.Unblocked):
            log.info("the broker unblocked publishing")
            self._blocked = False
            metrics.broker_blocked(DIRECT, False)
        elif isinstance(method, spec.Connection.Close):
            self._send(wire.method(0, spec.Connection.CloseOk()))
            raise ConnectionFailed(f"closed by the broker ({method.reply_code}) {method.reply_text}")
        return returning

    def _on_rpc_frame(self, frame):
        send = False
        with self._lock:
            sending, outcomes = self.rpc.on_frame(frame)
            if sending:
                send = self._enqueue(sending)
        _resolve(outcomes)
        if send:
            self._flush()

    def _on_return_content(self, frame, returning):
        channel, method, header, body = returning
        if header is None:
            header = frame
            size = 0
        else:
            body.append(frame.fragment)
            size = sum(len(fragment) for fragment in body)
        if size < header.body_size:
            return (channel, method, header, body)
        with self._lock:
            channel.mark_returned(method.exchange, header.properties.message_id)
        return None

    def _settle(self, channel, method, error):
        with self._lock:
            items = channel.confirmed(method.delivery_tag, method.multiple)
        for item in items:
            item.resolve(None if error else not item.returned, error)

    def _on_channel_close(self, channel, method):
        if missing_exchange(method) is None:
            log.warning("publish channel closed by the broker: (%s) %s", method.reply_code, method.reply_text)
        with self._lock:
            outcomes = channel.closed(method)
        self._send(wire.method(channel.number, spec.Channel.CloseOk()))
        self._open_channel(channel)
        _resolve(outcomes)

    def _on_blocked(self, method):
        log.warning("the broker blocked publishing (resource alarm): %s", method.reason)
        self._blocked = True
        metrics.broker_blocked(DIRECT, True)
        error = blocked(self.retry_after)
        send = False
        with self._lock:
            outcomes = [outcome for channel in self.channels.values() for outcome in channel.fail_all(error)]
            closing, failed = self.rpc.fail_in_flight(error)
            outcomes += failed
            if closing:
                send = self._enqueue(closing)
        _resolve(outcomes)
        if send:
            self._flush()

    def _lost(self, sock):
        """The connection is gone: every publish in flight answers 503 now."""
        self._ready.clear()
        error = BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
        with self._lock:
            self._generation += 1
            self._sock = None
            self._outbox = []
            self._declared = set()  # a restarted broker has lost its transient exchanges
            outcomes = []
            for channel in self.channels.values():
                outcomes += channel.fail_all(error)
                channel.reset()
            outcomes += [(call, None, error) for call in self.rpc.reset(CHANNELS_NEEDED)]
            sending = self._sending
        if sock is not None:
            _shutdown(sock)
            if not sending:  # a sender still inside sendall keeps the fd; the socket closes with it
                sock.close()
        _resolve(outcomes)


def _expect(sock, decoder, method_class):  # sock: the socket, or a tls.BlockingTls over it
    """Read until ``method_class`` arrives on channel 0 (handshake only); a Connection.Close fails."""
    frames = decoder.frames
    while True:
        if not frames:
            decoder.feed(_recv(sock))
            continue
        method = getattr(frames.popleft(), "method", None)
        if isinstance(method, method_class):
            return method
        if isinstance(method, spec.Connection.Close):
            raise ConnectionFailed(f"({method.reply_code}) {method.reply_text}")


def _recv(sock):
    data = sock.recv(READ_SIZE)
    if not data:
        raise ConnectionFailed("the broker closed the socket during the handshake")
    return data


def _negotiate(client, server):
    """AMQP's rule (as pika applies it): 0 means no limit, else the smaller one."""
    return max(client, server) if not client or not server else min(client, server)


def _set_timeout(sock, option, seconds):
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _shutdown(sock):
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _resolve(outcomes):
    for item, routed, error in outcomes:
        item.resolve(routed, error)
