"""The direct publisher's connection: its state, its writes, and its reader thread.

Request threads write to the socket themselves: each queues its frames in
the outbox under one lock, and whoever finds no send in progress writes
everything queued with one ``sendall``.  One reader thread per process
connects (TCP, TLS for ``amqps://``, the AMQP ``handshake``, the two
confirm channels), then blocks in ``recv``, hands each decoded frame to the
publisher (``direct_publisher.DirectPublisher._on_frame``) and keeps
heartbeats flowing.  When the connection is lost, every publish and call in
flight fails with 503 at once, and the reader connects again (to the next
node of a cluster) with the back-off of ``nodes``.

On ``amqps://`` the socket stays plain and TLS runs on memory BIOs under the
same lock (``tls``): an ``ssl.SSLSocket`` cannot be read and written by two
threads at once.  The plain path does no extra work per frame: the outbox on
a TLS connection is a ``tls.SealingOutbox``, whose ``append`` encrypts,
chosen once per connection.
"""

import contextlib
import functools
import logging
import socket
import struct
import threading
import time

from pika import spec

from hutch import metrics
from hutch.amqp import wire
from hutch.amqp.confirms import ConfirmChannel, resolve
from hutch.amqp.direct_rpc import RpcChannels
from hutch.amqp.handshake import CHANNELS_NEEDED, CLIENT_FRAME_MAX, READ_SIZE, ConnectionFailed, handshake
from hutch.amqp.tls import BlockingTls, TlsSession
from hutch.errors import BrokerUnavailable

log = logging.getLogger(__name__)

IDLE_TICK = 1.0  # seconds a read blocks when heartbeats are off, to notice close()
DIRECT = "direct"  # this connection's name in the broker metrics (pika's: "pika")


class DirectConnection:
    """The state of the direct publisher's connection, under one lock: its socket and outbox, its
    two confirm channels (``confirms.ConfirmChannel``) and its RPC channels (``direct_rpc``).

    ``nodes`` is a ``nodes.Nodes``; ``declare(exchange, kind, again)``
    declares an exchange through the pika connection (``again``: the broker
    said it is gone).  ``connect(address, timeout)`` makes the socket
    (``socket.create_connection``; a test passes its own).  The subclass,
    ``direct_publisher.DirectPublisher``, handles each frame the reader reads
    (``_on_frame``).
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
        """TCP, TLS for amqps://, the AMQP handshake (``handshake``), then the two channels.
        Returns the socket, the decoder and what the reader calls to read (``recv``)."""
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
            channel_max, frame_max, heartbeat = handshake(link, decoder, parameters, self.heartbeat)
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
        resolve(outcomes)


def _set_timeout(sock, option, seconds):
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _shutdown(sock):
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
