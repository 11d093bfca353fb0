"""The direct publisher's state machine (hutch.amqp.direct_publisher, direct_connection) on a fake socket.

The fake socket plays the broker's side frame by frame: the test reads
what the publisher wrote (decoded with pika's codec) and feeds it the
broker's answers (acks, multiple acks, nacks, returns, closes, blocked).
"""

import queue
import threading
import time

import pika
from pika import frame, spec

from hutch.amqp import wire
from hutch.amqp.direct_publisher import DirectPublisher
from hutch.amqp.nodes import Nodes
from hutch.amqp.topology import BROADCAST, NOTIFY
from hutch.errors import BrokerUnavailable, PublishNacked
from hutch.messages import Message

WAIT = 5.0


class FakeSocket:
    """A socket whose peer is the test: ``sent`` collects writes, ``reply`` queues reads."""

    def __init__(self):
        self.incoming = queue.Queue()
        self.decoder = wire.Decoder()
        self.written = threading.Condition()
        self.options = {}
        self.shut = False
        self.closed = False

    # the socket API the publisher uses
    def setsockopt(self, level, option, value):
        self.options[option] = value

    def settimeout(self, value):
        pass

    def sendall(self, data):
        if self.shut:
            raise BrokenPipeError("shut down")
        with self.written:
            if data.startswith(b"AMQP"):
                data = data[8:]
            self.decoder.feed(data)
            self.written.notify_all()

    def recv(self, size):
        try:
            data = self.incoming.get(timeout=0.05)
        except queue.Empty:
            if self.shut:
                return b""
            raise BlockingIOError("SO_RCVTIMEO") from None
        return data

    def shutdown(self, how):
        self.shut = True

    def close(self):
        self.closed = True

    # the broker's side
    def reply(self, *frames):
        self.incoming.put(b"".join(frames))

    def next_frame(self, timeout=WAIT):
        """The next frame the publisher wrote (heartbeats skipped)."""
        deadline = time.monotonic() + timeout
        with self.written:
            while True:
                frames = self.decoder.frames
                while frames:
                    found = frames.popleft()
                    if not isinstance(found, frame.Heartbeat):
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the publisher wrote nothing")
                self.written.wait(left)

    def expect(self, method_class, timeout=WAIT):
        found = self.next_frame(timeout)
        assert isinstance(getattr(found, "method", None), method_class), found
        return found

    def publish_frames(self):
        """Method, header and body frames of one publish: (channel, method, properties, body)."""
        method = self.expect(spec.Basic.Publish)
        header = self.next_frame()
        body = b""
        while len(body) < header.body_size:
            body += self.next_frame().fragment
        return method.channel_number, method.method, header.properties, body


def method(channel, amqp_method):
    return wire.method(channel, amqp_method)


class Harness:
    """A DirectPublisher connected to FakeSockets, one per connection attempt.

    ``url`` and ``make_socket``: an ``amqps://`` URL and a socket whose peer speaks TLS
    (``fake_tls``; the ``harness`` fixture runs every test both ways).
    """

    def __init__(
        self,
        frame_max=131072,
        heartbeat=0,
        publish_timeout=60.0,
        server_heartbeat=60,
        connect_timeout=WAIT,
        url="amqp://user:secret@node-a:5672/vhost",
        make_socket=FakeSocket,
    ):
        self.sockets = queue.Queue()
        self.declared = []
        self.make_socket = make_socket
        self.tune = spec.Connection.Tune(channel_max=2047, frame_max=frame_max, heartbeat=server_heartbeat)
        nodes = Nodes([url], lambda p: None, shuffle=lambda x: None)
        self.publisher = DirectPublisher(
            nodes,
            lambda exchange, kind, again: self.declared.append((exchange, kind, again)),
            publish_timeout=publish_timeout,
            connect_timeout=connect_timeout,
            heartbeat=heartbeat,
            connect=self._connect,
        )
        self.publisher.nodes.next_pause = lambda opened, lived: 0.01

    def _connect(self, address, timeout):
        sock = self.make_socket()
        sock.address = address
        sock.reply(
            method(0, spec.Connection.Start(server_properties={}, mechanisms=b"AMQPLAIN PLAIN")),
            method(0, self.tune),
            method(0, spec.Connection.OpenOk()),
        )
        self.sockets.put(sock)
        return sock

    def connected(self):
        """Wait for the next connection; open its two channels; return its socket."""
        sock = self.sockets.get(timeout=WAIT)
        sock.expect(spec.Connection.StartOk)
        sock.expect(spec.Connection.TuneOk)
        sock.expect(spec.Connection.Open)
        for _ in range(2):
            opened = sock.expect(spec.Channel.Open)
            sock.expect(spec.Confirm.Select)
            number = opened.channel_number
            sock.reply(method(number, spec.Channel.OpenOk()), method(number, spec.Confirm.SelectOk()))
        return sock

    def publish_async(self, idiom, exchange, message_id, body=b"hi"):
        """Publish on a thread; returns a function giving (routed, error) when it finishes."""
        message = Message(body, pika.BasicProperties(message_id=message_id))
        kind = BROADCAST if idiom == "broadcast" else NOTIFY
        return in_thread(lambda: self.publisher.publish(idiom, kind, exchange, message), "publish")


def in_thread(operation, what):
    """Run ``operation()`` on a thread; returns a function giving (value, error) once it has ended."""
    outcome = {}

    def run():
        try:
            outcome["value"] = operation()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout=WAIT):
        thread.join(timeout)
        assert not thread.is_alive(), f"the {what} is still waiting"
        return outcome.get("value"), outcome.get("error")

    result.thread = thread
    return result


def ack(channel, tag, multiple=False):
    return method(channel, spec.Basic.Ack(delivery_tag=tag, multiple=multiple))


def test_handshake_logs_in_with_plain_and_honours_tune(harness):
    h = harness(frame_max=4096, heartbeat=7)
    h.publish_async("broadcast", "ex", "m1")
    sock = h.sockets.get(timeout=WAIT)
    start_ok = sock.expect(spec.Connection.StartOk).method
    assert start_ok.mechanism == "PLAIN"
    assert start_ok.response == b"\0user\0secret"
    capabilities = start_ok.client_properties["capabilities"]
    for name in ("publisher_confirms", "basic.nack", "connection.blocked"):
        assert capabilities[name] is True
    tune_ok = sock.expect(spec.Connection.TuneOk).method
    assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == (2047, 4096, 7)  # RPC: 3 .. 2047
    assert sock.expect(spec.Connection.Open).method.virtual_host == "vhost"
    assert sock.address == ("node-a", 5672)


def test_an_ack_releases_the_publish_and_a_return_makes_it_unrouted(harness):
    h = harness()
    first = h.publish_async("broadcast", "ex", "m1")
    sock = h.connected()
    channel, published, _properties, body = sock.publish_frames()
    assert (channel, published.exchange, published.mandatory, body) == (1, "ex", True, b"hi")
    sock.reply(ack(1, 1))
    assert first() == (True, None)
    second = h.publish_async("broadcast", "ex", "m2")
    sock.publish_frames()
    returned = spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="ex", routing_key="")
    sock.reply(
        method(1, returned),
        frame.Header(1, 2, pika.BasicProperties(message_id="m2")).marshal(),
        frame.Body(1, b"hi").marshal(),
        ack(1, 2),
    )
    assert second() == (False, None)
    assert h.declared == [("ex", BROADCAST, False)]  # declared once, through the pika connection


def test_a_multiple_ack_releases_every_publish_up_to_its_tag(harness):
    h = harness()
    results = {f"m{i}": h.publish_async("notify", "ex", f"m{i}") for i in range(3)}
    sock = h.connected()
    in_tag_order = []
    for _ in results:
        channel, _method, properties, _body = sock.publish_frames()
        assert channel == 2  # notify's channel
        in_tag_order.append(properties.message_id)
    sock.reply(ack(2, 2, multiple=True))
    assert [results[m]() for m in in_tag_order[:2]] == [(True, None)] * 2
    assert results[in_tag_order[2]].thread.is_alive()  # tag 3 is not covered
    sock.reply(ack(2, 3))
    assert results[in_tag_order[2]]() == (True, None)


def test_a_return_is_matched_to_its_own_publish_among_several_in_flight(harness):
    h = harness()
    results = [h.publish_async("broadcast", "ex", message_id) for message_id in ("a", "b", "c")]
    sock = h.connected()
    ids = [sock.publish_frames()[2].message_id for _ in results]  # tags 1..3 in the order sent
    unrouted = ids[1]
    sock.reply(
        method(1, spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="ex", routing_key="")),
        frame.Header(1, 0, pika.BasicProperties(message_id=unrouted)).marshal(),
        ack(1, 3, multiple=True),
    )
    outcomes = {message_id: result() for message_id, result in zip(("a", "b", "c"), results, strict=True)}
    assert outcomes == {m: (m != unrouted, None) for m in ("a", "b", "c")}


def test_a_nack_is_a_503(harness):
    h = harness()
    result = h.publish_async("notify", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    sock.reply(method(2, spec.Basic.Nack(delivery_tag=1)))
    _routed, error = result()
    assert isinstance(error, PublishNacked) and error.status == 503


def test_a_connection_close_fails_everything_in_flight_at_once_and_reconnects(harness):
    h = harness()
    results = [h.publish_async("broadcast", "ex", "m1"), h.publish_async("notify", "ex", "m2")]
    sock = h.connected()
    sock.publish_frames()
    sock.publish_frames()
    forced = spec.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0)
    sock.reply(method(0, forced))
    for result in results:
        _routed, error = result()
        assert isinstance(error, BrokerUnavailable) and "lost" in str(error.detail)
    sock.expect(spec.Connection.CloseOk)
    again = h.connected()  # the reader reconnects by itself
    result = h.publish_async("broadcast", "ex", "m3")
    assert again.publish_frames()[2].message_id == "m3"
    again.reply(ack(1, 1))  # tags start again at 1 on the new connection
    assert result() == (True, None)


def test_blocked_fails_in_flight_publishes_and_refuses_new_ones_until_unblocked(harness):
    h = harness()
    in_flight = h.publish_async("notify", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    sock.reply(method(0, spec.Connection.Blocked(reason="low on memory")))
    _routed, error = in_flight()
    assert isinstance(error, BrokerUnavailable) and "blocked" in error.detail
    started = time.monotonic()
    _routed, error = h.publish_async("notify", "ex", "m2")()
    assert isinstance(error, BrokerUnavailable) and time.monotonic() - started < WAIT  # not a timeout
    sock.reply(method(0, spec.Connection.Unblocked()))
    deadline = time.monotonic() + WAIT
    while h.publisher._blocked and time.monotonic() < deadline:
        time.sleep(0.01)
    result = h.publish_async("notify", "ex", "m3")
    sock.publish_frames()
    sock.reply(ack(2, 2))
    assert result() == (True, None)


def test_an_unconfirmed_publish_times_out_with_503(harness):
    h = harness(publish_timeout=0.3)
    result = h.publish_async("broadcast", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    _routed, error = result()
    assert isinstance(error, BrokerUnavailable) and "in time" in error.detail
    sock.reply(ack(1, 1))  # a late ack for a publish given up on is ignored
    follow = h.publish_async("broadcast", "ex", "m2")
    sock.publish_frames()
    sock.reply(ack(1, 2))
    assert follow() == (True, None)


def test_a_missing_exchange_is_declared_again_and_the_publish_sent_again(harness):
    h = harness()
    result = h.publish_async("notify", "gone", "m1")
    sock = h.connected()
    sock.publish_frames()
    text = "NOT_FOUND - no exchange 'gone' in vhost 'vhost'"
    sock.reply(method(2, spec.Channel.Close(reply_code=404, reply_text=text, class_id=60, method_id=40)))
    sock.expect(spec.Channel.CloseOk)
    sock.expect(spec.Channel.Open)
    sock.expect(spec.Confirm.Select)
    sock.reply(method(2, spec.Channel.OpenOk()), method(2, spec.Confirm.SelectOk()))
    channel, _published, properties, _body = sock.publish_frames()
    assert (channel, properties.message_id) == (2, "m1")
    sock.reply(ack(2, 1))  # the reopened channel counts tags from 1 again
    assert result() == (True, None)
    assert h.declared == [("gone", NOTIFY, False), ("gone", NOTIFY, True)]


def test_another_channel_close_is_answered_as_the_broker_meant_it(harness):
    h = harness()
    result = h.publish_async("notify", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    refused = spec.Channel.Close(reply_code=403, reply_text="ACCESS_REFUSED", class_id=60, method_id=40)
    sock.reply(method(2, refused))
    _routed, error = result()
    assert error is not None and error.status == 403


def test_a_body_larger_than_frame_max_is_split(harness):
    h = harness(frame_max=4096)
    body = bytes(range(256)) * 40  # 10,240 bytes
    result = h.publish_async("broadcast", "ex", "big", body=body)
    sock = h.connected()
    sock.expect(spec.Basic.Publish)
    header = sock.next_frame()
    fragments = [sock.next_frame() for _ in range(3)]
    assert header.body_size == len(body)
    assert [len(f.fragment) for f in fragments] == [4088, 4088, len(body) - 2 * 4088]
    assert b"".join(f.fragment for f in fragments) == body
    sock.reply(ack(1, 1))
    assert result() == (True, None)


def test_heartbeats_are_sent_when_idle_and_a_silent_broker_is_given_up(harness):
    h = harness(heartbeat=1)
    h.publish_async("broadcast", "ex", "m1")
    sock = h.connected()
    sock.publish_frames()
    deadline = time.monotonic() + WAIT
    with sock.written:  # the frames after the publish: heartbeats only (next_frame would skip them)
        while not any(isinstance(f, frame.Heartbeat) for f in sock.decoder.frames):
            assert time.monotonic() < deadline, "no heartbeat sent"
            sock.written.wait(0.1)
    assert h.sockets.get(timeout=WAIT) is not sock  # nothing heard for 2 heartbeats: a new connection
