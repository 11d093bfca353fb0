"""RPC on the direct publisher's connection (hutch.amqp.direct_rpc) against a fake socket.

The test plays the broker frame by frame, as in test_direct_publisher: it
reads the channel opens and requests the gateway writes and answers with
deliveries, returns and closes.  The promises are ``rpc``'s: one call per
channel, replies matched by correlation_id, and a channel retired (its
number used again only after Close-Ok) whenever a late reply could follow.
"""

import time

import pika
from pika import frame, spec

from hutch import metrics
from hutch.amqp.rpc import REPLY_TO, Reply
from hutch.errors import BrokerUnavailable, NoResponder, RpcTimeout
from hutch.messages import Message

from .test_direct_publisher import WAIT, in_thread, method


def call_async(h, body=b"ping", timeout=5.0, exchange="api", routing_key="add"):
    """Call on a thread; returns a function giving (reply, error) when the call ends."""
    message = Message(body, pika.BasicProperties(app_id="x"))
    return in_thread(lambda: h.publisher.call(exchange, routing_key, message, timeout), "call")


def opened(sock):
    """A new RPC channel: Channel.Open and the direct reply-to consumer; returns its number."""
    number = sock.expect(spec.Channel.Open).channel_number
    consume = sock.expect(spec.Basic.Consume)
    assert consume.channel_number == number
    assert (consume.method.queue, consume.method.no_ack) == (REPLY_TO, True)
    return number


def request(sock):
    """The next request the gateway published: (channel, Basic.Publish, properties, body)."""
    return sock.publish_frames()


def reply(number, body, correlation_id, frame_max=None, **properties):
    """A reply as the broker delivers it: Deliver, content header, body frames (split at ``frame_max``)."""
    properties = pika.BasicProperties(correlation_id=correlation_id, **properties)
    deliver = spec.Basic.Deliver("amq.ctag-1", 1, False, "", REPLY_TO + ".g2")
    size = frame_max - 8 if frame_max else max(1, len(body))
    pieces = [method(number, deliver), frame.Header(number, len(body), properties).marshal()]
    pieces += [frame.Body(number, body[at : at + size]).marshal() for at in range(0, len(body), size)]
    return b"".join(pieces)


def channel_close(number, code, text):
    return method(number, spec.Channel.Close(reply_code=code, reply_text=text, class_id=60, method_id=40))


def test_a_call_opens_a_reply_to_channel_publishes_mandatory_and_gets_its_reply(harness):
    h = harness()
    result = call_async(h, timeout=2.5)
    sock = h.connected()
    number = opened(sock)
    channel, published, properties, body = request(sock)
    assert number == channel == 3  # after broadcast's and notify's channels
    assert (published.exchange, published.routing_key, published.mandatory, body) == (
        "api",
        "add",
        True,
        b"ping",
    )
    assert (properties.reply_to, properties.expiration, properties.app_id) == (REPLY_TO, "2500", "x")
    replied_before = metrics.RPC_SECONDS._sum.get()
    sock.reply(reply(3, b"pong", properties.correlation_id, content_type="text/plain"))
    answer, error = result()
    assert error is None and isinstance(answer, Reply)
    assert (answer.body, answer.properties.content_type) == (b"pong", "text/plain")
    assert metrics.RPC_SECONDS._sum.get() > replied_before
    # The channel is idle again: the next call takes it without opening anything.
    second = call_async(h, body=b"again")
    channel, _published, properties, _body = request(sock)
    assert channel == 3
    sock.reply(reply(3, b"two", properties.correlation_id))
    assert second()[0].body == b"two"


def test_concurrent_calls_each_get_a_channel_and_their_own_reply(harness):
    h = harness()
    results = [call_async(h, body=f"call-{i}".encode()) for i in range(3)]
    sock = h.connected()
    requests = {}
    for _ in results:
        number = opened(sock)
        channel, _published, properties, body = request(sock)
        assert channel == number
        requests[body] = (number, properties.correlation_id)
    assert sorted(number for number, _ in requests.values()) == [3, 4, 5]
    for body, (number, correlation_id) in reversed(requests.items()):
        sock.reply(reply(number, body.upper(), correlation_id))
    assert sorted(result()[0].body for result in results) == [b"CALL-0", b"CALL-1", b"CALL-2"]


def test_a_correlation_less_reply_answers_the_call_but_retires_its_channel(harness):
    h = harness()
    result = call_async(h)
    sock = h.connected()
    opened(sock)
    request(sock)
    sock.reply(reply(3, b"seed-style", None))  # a responder that does not copy correlation_id
    assert result()[0].body == b"seed-style"
    assert sock.expect(spec.Channel.Close).channel_number == 3
    sock.reply(reply(3, b"second answer", None))  # it may answer twice: nobody hears it
    follow = call_async(h)
    assert opened(sock) == 4  # 3 waits for its Close-Ok
    _channel, _published, properties, _body = request(sock)
    sock.reply(reply(4, b"mine", properties.correlation_id))
    assert follow()[0].body == b"mine"
    sock.reply(method(3, spec.Channel.CloseOk()))
    deadline = time.monotonic() + WAIT
    while 3 not in h.publisher.rpc.free and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 3 in h.publisher.rpc.free  # confirmed closed: the number may carry a new channel


def test_a_reply_for_another_call_is_dropped_and_the_call_keeps_waiting(harness):
    h = harness()
    result = call_async(h)
    sock = h.connected()
    opened(sock)
    _channel, _published, properties, _body = request(sock)
    sock.reply(reply(3, b"not yours", "someone-else"))
    time.sleep(0.1)
    assert result.thread.is_alive()
    sock.reply(reply(3, b"yours", properties.correlation_id))
    assert result()[0].body == b"yours"


def test_a_timeout_is_504_and_retires_the_channel_so_a_late_reply_reaches_no_later_call(harness):
    h = harness()
    timed_out_before = metrics.RPC_TIMEOUTS._value.get()
    slow = call_async(h, body=b"slow", timeout=0.3)
    sock = h.connected()
    opened(sock)
    _channel, _published, late, _body = request(sock)
    reply_, error = slow()
    assert reply_ is None and isinstance(error, RpcTimeout) and error.status == 504
    assert metrics.RPC_TIMEOUTS._value.get() == timed_out_before + 1
    assert sock.expect(spec.Channel.Close).channel_number == 3
    follow = call_async(h, body=b"next")
    assert opened(sock) == 4
    _channel, _published, properties, _body = request(sock)
    sock.reply(reply(3, b"late reply", late.correlation_id), reply(4, b"next", properties.correlation_id))
    assert follow()[0].body == b"next"
    sock.reply(method(3, spec.Channel.CloseOk()))
    third = call_async(h, body=b"third")  # channel 4 is idle: it carries the third call
    channel, _published, properties, _body = request(sock)
    assert channel == 4
    sock.reply(reply(4, b"third", properties.correlation_id))
    assert third()[0].body == b"third"


def test_a_returned_request_means_no_responder_and_the_channel_stays_usable(harness):
    h = harness()
    result = call_async(h)
    sock = h.connected()
    opened(sock)
    _channel, _published, properties, _body = request(sock)
    returned = spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="api", routing_key="add")
    sock.reply(
        method(3, returned),
        frame.Header(3, 4, properties).marshal(),
        frame.Body(3, b"ping").marshal(),
    )
    _reply, error = result()
    assert isinstance(error, NoResponder) and "'add'" in error.detail
    follow = call_async(h)
    channel, _published, properties, _body = request(sock)
    assert channel == 3
    sock.reply(reply(3, b"ok", properties.correlation_id))
    assert follow()[0].body == b"ok"


def test_a_missing_exchange_is_no_responder_and_its_channel_number_is_opened_again(harness):
    h = harness()
    result = call_async(h, exchange="gone")
    sock = h.connected()
    opened(sock)
    request(sock)
    sock.reply(channel_close(3, 404, "NOT_FOUND - no exchange 'gone' in vhost 'vhost'"))
    _reply, error = result()
    assert isinstance(error, NoResponder) and error.status == 503 and "'gone'" in error.detail
    assert sock.expect(spec.Channel.CloseOk).channel_number == 3
    follow = call_async(h)
    assert opened(sock) == 3  # the broker closed it and got its Close-Ok: the number is free
    _channel, _published, properties, _body = request(sock)
    sock.reply(reply(3, b"ok", properties.correlation_id))
    assert follow()[0].body == b"ok"


def test_another_channel_close_is_answered_as_the_broker_meant_it(harness):
    h = harness()
    result = call_async(h)
    sock = h.connected()
    opened(sock)
    request(sock)
    sock.reply(channel_close(3, 403, "ACCESS_REFUSED - write access to exchange 'api' refused"))
    _reply, error = result()
    assert error is not None and error.status == 403


def test_blocked_fails_calls_in_flight_and_refuses_new_ones_at_once(harness):
    h = harness()
    in_flight = call_async(h)
    sock = h.connected()
    opened(sock)
    _channel, _published, properties, _body = request(sock)
    sock.reply(method(0, spec.Connection.Blocked(reason="low on memory")))
    _reply, error = in_flight()
    assert isinstance(error, BrokerUnavailable) and "resource alarm" in error.detail
    assert sock.expect(spec.Channel.Close).channel_number == 3  # a reply after all reaches no one
    started = time.monotonic()
    _reply, error = call_async(h, timeout=30)()
    assert isinstance(error, BrokerUnavailable) and time.monotonic() - started < 1.0
    sock.reply(reply(3, b"too late", properties.correlation_id), method(0, spec.Connection.Unblocked()))
    deadline = time.monotonic() + WAIT
    while h.publisher._blocked and time.monotonic() < deadline:
        time.sleep(0.01)
    follow = call_async(h)
    assert opened(sock) == 4
    _channel, _published, properties, _body = request(sock)
    sock.reply(reply(4, b"ok", properties.correlation_id))
    assert follow()[0].body == b"ok"


def test_a_lost_connection_fails_every_call_in_flight_and_the_next_connection_starts_afresh(harness):
    h = harness()
    results = [call_async(h), call_async(h)]
    sock = h.connected()
    for _ in results:
        opened(sock)
        request(sock)
    forced = spec.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0)
    sock.reply(method(0, forced))
    for result in results:
        _reply, error = result()
        assert isinstance(error, BrokerUnavailable) and "lost" in error.detail
        assert ("Retry-After", "5") in error.headers
    again = h.connected()
    follow = call_async(h)
    assert opened(again) == 3  # channel numbers start again on the new connection
    _channel, _published, properties, _body = request(again)
    again.reply(reply(3, b"ok", properties.correlation_id))
    assert follow()[0].body == b"ok"


def test_a_reply_body_in_several_frames_and_reads_is_put_together(harness):
    h = harness(frame_max=4096)
    result = call_async(h)
    sock = h.connected()
    opened(sock)
    _channel, _published, properties, _body = request(sock)
    body = bytes(range(256)) * 40  # 10,240 bytes: three body frames
    data = reply(3, body, properties.correlation_id, frame_max=4096)
    for at in range(0, len(data), 1000):  # and the frames themselves cut across reads
        sock.reply(data[at : at + 1000])
    answer, error = result()
    assert error is None and answer.body == body


def test_calls_beyond_the_channels_the_broker_allows_are_503(harness):
    h = harness()
    h.tune.channel_max = 3  # broadcast, notify and one RPC channel
    first = call_async(h)
    sock = h.connected()
    opened(sock)
    _channel, _published, properties, _body = request(sock)
    _reply, error = call_async(h)()
    assert isinstance(error, BrokerUnavailable) and "in flight" in error.detail
    sock.reply(reply(3, b"ok", properties.correlation_id))
    assert first()[0].body == b"ok"
