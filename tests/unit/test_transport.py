"""hutch.amqp.connection.DirectTransport with a fake socket, I/O services and protocol.

The fakes record what the transport asks of them: the bytes sent, the
``recv`` calls, the write-readiness watcher being switched on and off, and
the callbacks scheduled on the I/O loop.
"""

import errno

import pytest
from pika.adapters.utils import io_services_utils

from hutch.amqp.connection import BatchingConnection, DirectTransport

CHUNK = DirectTransport._MAX_RECV_BYTES


class FakeSocket:
    """Takes at most ``room`` bytes per send (None: all); recv hands out ``incoming`` chunks."""

    def __init__(self, room=None, send_error=None, incoming=()):
        self.room = room
        self.send_error = send_error
        self.incoming = list(incoming)
        self.sent = []
        self.sends = 0
        self.recvs = 0

    def fileno(self):
        return 7

    def send(self, data):
        self.sends += 1
        if self.send_error is not None:
            raise OSError(self.send_error, errno.errorcode[self.send_error])
        taken = bytes(data if self.room is None else data[: self.room])
        self.sent.append(taken)
        return len(taken)

    def recv(self, size):
        self.recvs += 1
        if not self.incoming:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        chunk = self.incoming.pop(0)
        assert len(chunk) <= size
        return chunk

    def shutdown(self, how):
        pass

    def close(self):
        pass


class FakeServices:
    """The I/O loop's side: which watchers are on, and the callbacks scheduled."""

    def __init__(self):
        self.reader = None
        self.writer = None
        self.writer_switches = 0
        self.callbacks = []

    def set_reader(self, fd, callback):
        self.reader = callback

    def remove_reader(self, fd):
        self.reader = None

    def set_writer(self, fd, callback):
        self.writer_switches += 1
        self.writer = callback

    def remove_writer(self, fd):
        if self.writer is not None:
            self.writer_switches += 1
        self.writer = None

    def add_callback_threadsafe(self, callback):
        self.callbacks.append(callback)

    def run_callbacks(self):
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


class FakeProtocol:
    def __init__(self):
        self.received = []
        self.lost = []

    def data_received(self, data):
        self.received.append(data)

    def eof_received(self):
        return False

    def connection_lost(self, error):
        self.lost.append(error)


def transport_with(sock):
    services, protocol = FakeServices(), FakeProtocol()
    return DirectTransport(sock, protocol, services), services, protocol


def test_a_write_the_socket_takes_is_sent_at_once_without_watching_for_write_readiness():
    sock = FakeSocket()
    transport, services, _ = transport_with(sock)

    transport.write(b"method+header+body")

    assert sock.sent == [b"method+header+body"]
    assert services.writer_switches == 0
    assert transport.get_write_buffer_size() == 0


def test_what_the_socket_does_not_take_waits_for_write_readiness_and_keeps_its_order():
    sock = FakeSocket(room=4)
    transport, services, _ = transport_with(sock)

    transport.write(b"abcdefgh")
    transport.write(b"ijk")  # queued behind the rest, not sent past it

    assert sock.sent == [b"abcd"]
    assert services.writer is not None
    assert transport.get_write_buffer_size() == 7
    sock.room = None
    services.writer()  # the socket became writable: pika's own path sends the backlog
    assert b"".join(sock.sent) == b"abcdefghijk"
    assert services.writer is None and transport.get_write_buffer_size() == 0
    transport.write(b"l")  # nothing queued any more: straight out again
    assert sock.sent[-1] == b"l" and services.writer is None


def test_a_full_send_buffer_queues_the_whole_write():
    sock = FakeSocket(send_error=errno.EAGAIN)
    transport, services, _ = transport_with(sock)

    transport.write(b"frame")

    assert sock.sent == [] and transport.get_write_buffer_size() == 5
    assert services.writer is not None
    sock.send_error = None
    services.writer()
    assert sock.sent == [b"frame"] and services.writer is None


def test_a_failing_send_aborts_the_connection_from_the_loop_not_inside_write():
    sock = FakeSocket(send_error=errno.ECONNRESET)
    transport, services, protocol = transport_with(sock)

    transport.write(b"frame")

    assert protocol.lost == []  # pika reports it on the next loop turn, never re-entering the caller
    assert services.reader is None and services.writer is None
    transport.write(b"more")  # inactive now: dropped, as pika drops it
    assert sock.sends == 1
    services.run_callbacks()
    assert [error.errno for error in protocol.lost] == [errno.ECONNRESET]


def test_a_short_read_is_the_last_one_no_recv_fails_with_eagain():
    sock = FakeSocket(incoming=[b"basic.ack", b"never read now"])
    _transport, services, protocol = transport_with(sock)

    services.reader()

    assert protocol.received == [b"basic.ack"]
    assert sock.recvs == 1


def test_a_full_read_reads_on_until_a_short_one():
    first, second = b"x" * CHUNK, b"y" * CHUNK
    sock = FakeSocket(incoming=[first, second, b"end", b"later"])
    _transport, services, protocol = transport_with(sock)

    services.reader()

    assert protocol.received == [first, second, b"end"]
    assert sock.recvs == 3


def test_a_read_that_finds_nothing_is_harmless():
    sock = FakeSocket()
    _transport, services, protocol = transport_with(sock)

    services.reader()  # a spurious wake-up: EAGAIN on the first recv

    assert protocol.received == [] and protocol.lost == []
    assert services.reader is not None


def test_reading_stops_after_the_per_turn_limit_so_other_events_get_their_turn():
    chunks = [b"z" * CHUNK for _ in range(DirectTransport._MAX_CONSUME_BYTES // CHUNK + 5)]
    sock = FakeSocket(incoming=chunks)
    _transport, services, protocol = transport_with(sock)

    services.reader()

    assert sum(map(len, protocol.received)) == DirectTransport._MAX_CONSUME_BYTES
    assert sock.incoming  # the rest waits for the next readiness


def test_end_of_stream_closes_the_connection():
    sock = FakeSocket(incoming=[b""])
    _transport, services, protocol = transport_with(sock)

    services.reader()
    services.run_callbacks()

    assert protocol.lost == [None]
    assert services.reader is None


def test_the_connection_uses_the_direct_transport_for_plaintext_and_pikas_own_for_tls():
    class Recorder(BatchingConnection):
        def __init__(self):  # no socket, no I/O loop: only the transport hand-over is tested
            self.made = []

        def _on_stream_connected(self):
            self.made.append(type(self._transport))

    services, protocol = FakeServices(), FakeProtocol()
    plaintext = io_services_utils._AsyncPlaintextTransport(FakeSocket(), protocol, services)
    tls = io_services_utils._AsyncSSLTransport.__new__(io_services_utils._AsyncSSLTransport)
    connection = Recorder()

    connection._proto_connection_made(plaintext)
    connection._proto_connection_made(tls)

    assert connection.made == [DirectTransport, io_services_utils._AsyncSSLTransport]
    assert isinstance(tls, io_services_utils._AsyncSSLTransport) and not isinstance(tls, DirectTransport)


@pytest.mark.parametrize("code", [errno.EAGAIN, errno.EWOULDBLOCK])
def test_try_again_codes_are_not_errors(code):
    sock = FakeSocket(send_error=code)
    transport, services, protocol = transport_with(sock)

    transport.write(b"frame")
    services.run_callbacks()

    assert protocol.lost == [] and transport.get_write_buffer_size() == 5
