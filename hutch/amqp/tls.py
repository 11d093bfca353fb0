"""TLS for the direct publisher's connection, on memory BIOs.

An ``ssl.SSLSocket`` cannot be read by one thread while others write: both
go through one OpenSSL object, which is not safe to use from two threads at
once.  The direct publisher needs exactly that (request threads write, one
reader thread blocks in ``recv``), so it keeps its socket plain and runs TLS
in an ``ssl.SSLObject`` over two ``ssl.MemoryBIO``s, every call of which the
publisher makes under its lock:

* frames are encrypted where they enter the outbox (``SealingOutbox``), in
  the same lock hold, so the TLS records are queued in the order they were
  made and the single sender keeps that order, as TLS requires;
* the reader hands what ``recv`` returned to ``decrypt`` under the lock;
  whatever OpenSSL wants sent back meanwhile (a TLS 1.3 KeyUpdate answer) is
  queued as it is, behind the records already queued.

The handshake runs on the blocking socket before anyone else can use it.
A close_notify from the broker ends the connection as its EOF does.  A
write that OpenSSL cannot make without reading first (a TLS 1.2
renegotiation in progress) fails the connection: the publisher reconnects.
"""

import contextlib
import socket
import ssl

from hutch.errors import BrokerUnavailable

READ_SIZE = 65536


class TlsClosed(Exception):
    """The session cannot carry more data: the broker's close_notify, or a failed write."""


class TlsSession:
    """One connection's TLS state: an ``SSLObject`` and its two memory BIOs."""

    def __init__(self, ssl_options, host, retry_after=None):
        """``ssl_options``: pika's ``SSLOptions`` (its context; its server_hostname, else ``host``);
        ``retry_after``: for the 503 of a publish whose frames could not be encrypted."""
        self.retry_after = retry_after
        self.sock = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        server_hostname = ssl_options.server_hostname or host
        self.tls = ssl_options.context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.closed = False  # close_notify read: what came before it is still handled

    def handshake(self, sock):
        """Run the TLS handshake over the blocking ``sock`` (verification failures raise ``ssl.SSLError``)."""
        self.sock = sock
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending(sock)
                data = sock.recv(READ_SIZE)
                if not data:
                    raise ConnectionResetError("the broker closed the socket in the TLS handshake") from None
                self.incoming.write(data)
            except ssl.SSLError:  # verification failed: send the alert, so the broker logs why
                with contextlib.suppress(OSError):
                    self._send_pending(sock)
                raise
        self._send_pending(sock)

    def _send_pending(self, sock):
        pending = self.outgoing.read()
        if pending:
            sock.sendall(pending)

    def encrypt(self, data):
        """``data`` as TLS records (with whatever OpenSSL queued before them)."""
        try:
            self.tls.write(data)
        except ssl.SSLError as error:  # SSLWantReadError included: renegotiating
            self.closed = True
            with contextlib.suppress(OSError):  # the reader sees it and fails what is in flight
                self.sock.shutdown(socket.SHUT_RDWR)
            raise TlsClosed(f"TLS write failed: {error}") from error
        return self.outgoing.read()

    def decrypt(self, data):
        """Records read from the socket in; (plaintext, bytes to send back) out.

        After a close_notify, ``closed`` is set; the plaintext that came before it is returned.
        """
        tls, incoming = self.tls, self.incoming
        incoming.write(data)
        pieces = []
        # Read while bytes are left: reading until SSLWantReadError would raise (and build) one
        # exception per read; OpenSSL takes one record at a time, so an unread record stays counted.
        while incoming.pending or tls.pending():
            try:
                piece = tls.read(READ_SIZE)
            except ssl.SSLWantReadError:  # the rest of a record is still on its way
                break
            if not piece:  # close_notify
                self.closed = True
                break
            pieces.append(piece)
        plaintext = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return plaintext, self.outgoing.read()

    def outbox(self):
        """A new, empty outbox that encrypts what is appended to it."""
        return SealingOutbox(self)


class SealingOutbox(list):
    """The publisher's outbox on a TLS connection: ``append`` queues a frame's TLS records
    (under the publisher's lock); ``append_sealed`` queues bytes that are records already."""

    __slots__ = ("_session",)

    def __init__(self, session):
        super().__init__()
        self._session = session

    def append(self, data):
        try:
            list.append(self, self._session.encrypt(data))
        except TlsClosed as error:
            lost = BrokerUnavailable("The connection to the broker was lost.", self._session.retry_after)
            raise lost from error

    def append_sealed(self, records):
        list.append(self, records)


class BlockingTls:
    """``sendall`` and ``recv`` through the session, for the AMQP handshake (one thread, no lock yet)."""

    def __init__(self, sock, session):
        self.sock = sock
        self.session = session

    def sendall(self, data):
        self.sock.sendall(self.session.encrypt(data))

    def recv(self, size):
        """Plaintext, at least one byte; b"" when the broker closed the socket or the session."""
        session = self.session
        while not session.closed:
            data = self.sock.recv(size)
            if not data:
                return b""
            plaintext, reply = session.decrypt(data)
            if reply:
                self.sock.sendall(reply)
            if plaintext:
                return plaintext
        return b""
