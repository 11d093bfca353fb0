"""The direct publisher over ``amqps://`` (``hutch.amqp.tls``) against a fake broker speaking real TLS.

Every test of test_direct_publisher and test_direct_rpc already runs over
TLS too (the ``harness`` fixture); these are the TLS-only promises: what
goes on the wire is encrypted, the records of many request threads reach
the broker in an order it can decrypt, the server is verified, and the
broker's close_notify is a lost connection.
"""

import contextlib
import ssl
import threading

import pika
import pytest

from harness.certs import make_ca
from hutch.amqp.tls import SealingOutbox, TlsSession
from hutch.errors import BrokerUnavailable

from .fake_tls import TlsFakeSocket, amqps_url, server_context
from .test_direct_publisher import WAIT, Harness, ack

THREADS = 8
EACH = 25


@pytest.fixture
def tls(tls_files):
    """``tls(**options)``: a ``Harness`` whose broker speaks TLS (``cafile`` given: trusting that CA)."""
    made = []
    context = server_context(tls_files)

    def make(cafile=tls_files.cafile, **options):
        made.append(Harness(url=amqps_url(cafile, **options), make_socket=lambda: TlsFakeSocket(context)))
        return made[-1]

    yield make
    for each in made:
        each.publisher._stopping.set()


def test_frames_go_encrypted_and_the_confirm_comes_back_through_tls(tls):
    h = tls()
    result = h.publish_async("notify", "ex", "m1", body=b"a secret body")
    sock = h.connected()
    channel, published, properties, body = sock.publish_frames()
    assert (channel, published.exchange, properties.message_id, body) == (2, "ex", "m1", b"a secret body")
    assert b"a secret body" not in sock.ciphertext and b"AMQP" not in sock.ciphertext
    assert isinstance(h.publisher._outbox, SealingOutbox)
    sock.reply(ack(2, 1))
    assert result() == (True, None)
    assert sock.failed is None


def test_many_request_threads_publishing_at_once_keep_the_records_in_order(tls):
    h = tls()
    h.publish_async("broadcast", "ex", "warm")  # connects
    sock = h.connected()
    sock.publish_frames()
    sock.reply(ack(1, 1))
    start = threading.Barrier(THREADS)

    def publish_many(thread):
        start.wait(WAIT)
        return [h.publish_async("broadcast", "ex", f"t{thread}-{i}") for i in range(EACH)]

    results = []
    threads = [threading.Thread(target=lambda n=n: results.extend(publish_many(n))) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    seen = [sock.publish_frames()[2].message_id for _ in range(THREADS * EACH)]
    for thread in threads:
        thread.join(WAIT)
    assert sock.failed is None  # a record out of order or garbled fails the broker's decryption
    assert sorted(seen) == sorted(f"t{n}-{i}" for n in range(THREADS) for i in range(EACH))
    sock.reply(ack(1, THREADS * EACH + 1, multiple=True))
    assert all(result() == (True, None) for result in results)


def test_the_brokers_close_notify_is_a_lost_connection_and_the_publisher_reconnects(tls):
    h = tls()
    in_flight = h.publish_async("broadcast", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    sock.close_notify()
    _routed, error = in_flight()
    assert isinstance(error, BrokerUnavailable) and "lost" in error.detail
    again = h.connected()
    result = h.publish_async("broadcast", "ex", "m2")
    assert again.publish_frames()[2].message_id == "m2"
    again.reply(ack(1, 1))
    assert result() == (True, None)


def test_frames_that_came_before_the_close_notify_are_handled(tls):
    h = tls()
    in_flight = h.publish_async("notify", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    sock.reply(ack(2, 1))
    sock.close_notify()  # often in the same read as the ack
    assert in_flight() == (True, None)


@pytest.mark.parametrize("mismatch", ["another CA", "another name"])
def test_a_server_that_fails_verification_never_gets_a_frame(tls, tmp_path, mismatch):
    if mismatch == "another CA":
        h = tls(cafile=make_ca(tmp_path, name="another CA")[0])
    else:
        h = tls(server_hostname="elsewhere.example")
    h.publisher.connect_timeout = 0.5
    result = h.publish_async("broadcast", "ex", "m1")
    sock = h.sockets.get(timeout=WAIT)
    _routed, error = result()
    assert isinstance(error, BrokerUnavailable) and "unreachable" in error.detail
    assert sock.closed and not sock.handshaken
    assert sock.failed is not None  # the client's alert ended the handshake
    with sock.written:
        assert not sock.decoder.frames


def test_a_write_tls_refuses_fails_the_publish_with_503_and_the_connection(tls):
    h = tls()
    first = h.publish_async("broadcast", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    session = h.publisher._outbox._session
    session.tls = BrokenTls(session.tls)
    _routed, error = h.publish_async("broadcast", "ex", "m2")()
    assert isinstance(error, BrokerUnavailable) and error.headers == [("Retry-After", "5")]
    _routed, error = first()  # the socket was shut: the reader fails what was in flight
    assert isinstance(error, BrokerUnavailable) and "lost" in error.detail
    assert h.connected() is not sock


class BrokenTls:
    """An SSLObject whose writes fail as OpenSSL's do mid-renegotiation."""

    def __init__(self, tls):
        self.tls = tls

    def write(self, data):
        raise ssl.SSLWantReadError("renegotiating")

    def __getattr__(self, name):
        return getattr(self.tls, name)


def handshaken(tls_files):
    """A client ``TlsSession`` and a server SSLObject (with its two BIOs) past the handshake."""
    options = pika.SSLOptions(ssl.create_default_context(cafile=str(tls_files.cafile)))
    client = TlsSession(options, "node-a")
    into_server, from_server = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context(tls_files).wrap_bio(into_server, from_server, server_side=True)
    for _ in range(4):
        for side in (client.tls, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        into_server.write(client.outgoing.read())
        client.incoming.write(from_server.read())
    assert client.tls.version() == "TLSv1.3" and server.version() == "TLSv1.3"
    return client, server, from_server


@pytest.mark.parametrize("chunk", [1000, 40000])  # a read ends inside a record / holds several
def test_records_split_across_reads_come_out_whole_and_in_order(tls_files, chunk):
    client, server, from_server = handshaken(tls_files)
    sent = bytes(range(256)) * 400  # 102,400 bytes: seven records of at most 16 KiB
    server.write(sent)
    records = from_server.read()
    received = [client.decrypt(records[at : at + chunk])[0] for at in range(0, len(records), chunk)]
    assert b"".join(received) == sent
    assert not client.closed


def test_plaintext_before_a_close_notify_is_returned_then_the_session_is_closed(tls_files):
    client, server, from_server = handshaken(tls_files)
    server.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()
    plaintext, _reply = client.decrypt(from_server.read())
    assert plaintext == b"last words"
    assert client.closed
