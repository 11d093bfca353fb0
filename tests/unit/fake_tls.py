"""The fake socket's broker side speaking TLS, for the direct publisher's TLS tests.

The test still plays the broker frame by frame (``FakeSocket``), but the
bytes between it and the publisher are real TLS: a server ``SSLObject`` on
memory BIOs, with a certificate made at test time (``harness.certs``),
decrypts what the publisher writes and encrypts what the test replies.
Records written out of order, or garbled, fail its decryption, which the
tests see as ``failed``.
"""

import contextlib
import ssl
import urllib.parse

from .test_direct_publisher import FakeSocket


def server_context(files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.certfile, files.keyfile)
    return context


def amqps_url(cafile, host="node-a", **ssl_options):
    query = urllib.parse.quote(repr({"cafile": str(cafile), **ssl_options}))
    return f"amqps://user:secret@{host}:5672/vhost?ssl_options={query}"


class TlsFakeSocket(FakeSocket):
    """A ``FakeSocket`` whose peer decrypts and encrypts; ``ciphertext``: everything the publisher wrote."""

    def __init__(self, context):
        super().__init__()
        self.from_client, self.to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.server = context.wrap_bio(self.from_client, self.to_client, server_side=True)
        self.handshaken = False
        self.held = []  # replies the test queued before the handshake ended
        self.ciphertext = bytearray()
        self.failed = None  # the server side's SSLError, if any

    def sendall(self, data):
        if self.shut:
            raise BrokenPipeError("shut down")
        with self.written:  # a Condition on an RLock: FakeSocket.sendall takes it again
            self.ciphertext += data
            self.from_client.write(data)
            try:
                plaintext = self._receive()
            except ssl.SSLError as error:
                self.failed = error
                self._pass_on()  # the alert
                self.written.notify_all()
                return
            if plaintext:
                super().sendall(plaintext)

    def _receive(self):
        if not self.handshaken:
            try:
                self.server.do_handshake()
            except ssl.SSLWantReadError:
                self._pass_on()
                return b""
            self.handshaken = True
            self._pass_on()  # the server's last flight and its session tickets
            for data in self.held:
                self._seal(data)
            self.held = []
        pieces = []
        while True:
            try:
                piece = self.server.read(65536)
            except ssl.SSLWantReadError:
                return b"".join(pieces)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)

    def _pass_on(self):
        data = self.to_client.read()
        if data:
            self.incoming.put(data)

    def _seal(self, data):
        self.server.write(data)
        self._pass_on()

    def reply(self, *frames):
        with self.written:
            if self.handshaken:
                self._seal(b"".join(frames))
            else:
                self.held.append(b"".join(frames))

    def close_notify(self):
        """The broker ends the TLS session (its close_notify)."""
        with self.written:
            with contextlib.suppress(ssl.SSLWantReadError):  # the client's close_notify is not awaited
                self.server.unwrap()
            self._pass_on()
