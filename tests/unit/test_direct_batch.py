"""DirectPublisher.publish_many against the fake socket of test_direct_publisher (no broker).

A batch is sent whole before any confirm, and each message's outcome is
its own confirm: a lost connection, a timeout or a channel closed before
the ack fails exactly the messages not yet confirmed.
"""

import pika
from pika import frame, spec

from hutch.amqp.topology import BROADCAST, NOTIFY
from hutch.errors import BrokerUnavailable
from hutch.messages import Message

from .test_direct_publisher import ack, in_thread, method


def publish_many_async(h, idiom, exchange, ids):
    messages = [Message(b"hi", pika.BasicProperties(message_id=message_id)) for message_id in ids]
    kind = BROADCAST if idiom == "broadcast" else NOTIFY
    return in_thread(lambda: h.publisher.publish_many(idiom, kind, exchange, messages), "batch")


def returned(channel, exchange, message_id):
    return (
        method(channel, spec.Basic.Return(312, "NO_ROUTE", exchange, ""))
        + frame.Header(channel, 0, pika.BasicProperties(message_id=message_id)).marshal()
    )


def test_the_whole_batch_is_sent_before_any_confirm_and_each_line_keeps_its_return(harness):
    h = harness()
    result = publish_many_async(h, "broadcast", "ex", ["a", "b", "c"])
    sock = h.connected()
    sent = [sock.publish_frames()[2].message_id for _ in range(3)]  # no ack yet: all three are out
    assert sent == ["a", "b", "c"]
    sock.reply(returned(1, "ex", "b"), ack(1, 3, multiple=True))
    assert result() == ([True, False, True], None)
    assert h.declared == [("ex", BROADCAST, False)]


def test_a_connection_lost_mid_batch_fails_exactly_the_unconfirmed_lines(harness):
    h = harness()
    result = publish_many_async(h, "notify", "ex", ["m1", "m2", "m3", "m4"])
    sock = h.connected()
    for _ in range(4):
        sock.publish_frames()
    sock.reply(ack(2, 2, multiple=True))
    forced = spec.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0)
    sock.reply(method(0, forced))
    outcomes, error = result()
    assert error is None
    assert outcomes[:2] == [True, True]
    assert all(isinstance(outcome, BrokerUnavailable) and outcome.status == 503 for outcome in outcomes[2:])


def test_lines_not_confirmed_in_time_are_503_and_the_confirmed_ones_stand(harness):
    h = harness(publish_timeout=0.3)
    result = publish_many_async(h, "notify", "ex", ["m1", "m2"])
    sock = h.connected()
    sock.publish_frames()
    sock.publish_frames()
    sock.reply(ack(2, 1))
    outcomes, error = result()
    assert error is None and outcomes[0] is True
    assert isinstance(outcomes[1], BrokerUnavailable) and "in time" in outcomes[1].detail
    sock.reply(ack(2, 2))  # a late ack for a line given up on is ignored
    follow = publish_many_async(h, "notify", "ex", ["m3"])
    sock.publish_frames()
    sock.reply(ack(2, 3))
    assert follow() == ([True], None)


def test_a_broadcast_batch_line_is_never_trusted_without_its_ack(harness):
    """One message's broadcast counts a publish before a missing exchange as routed when the channel
    closes unconfirmed (at most once); a batch line is reported 202 only on its ack."""
    h = harness()
    batch = publish_many_async(h, "broadcast", "ex", ["a", "b"])
    sock = h.connected()
    sock.publish_frames()
    sock.publish_frames()
    single = h.publish_async("broadcast", "other", "s")
    sock.publish_frames()
    text = "NOT_FOUND - no exchange 'gone' in vhost 'vhost'"
    sock.reply(method(1, spec.Channel.Close(reply_code=404, reply_text=text, class_id=60, method_id=40)))
    outcomes, error = batch()
    assert error is None
    assert all(isinstance(outcome, BrokerUnavailable) for outcome in outcomes)
    assert single() == (True, None)  # the single publish keeps broadcast's at-most-once reading


def test_lines_the_broker_discarded_for_a_missing_exchange_are_sent_again(harness):
    h = harness()
    result = publish_many_async(h, "notify", "gone", ["m1", "m2", "m3"])
    sock = h.connected()
    for _ in range(3):
        sock.publish_frames()
    text = "NOT_FOUND - no exchange 'gone' in vhost 'vhost'"
    sock.reply(method(2, spec.Channel.Close(reply_code=404, reply_text=text, class_id=60, method_id=40)))
    sock.expect(spec.Channel.CloseOk)
    sock.expect(spec.Channel.Open)
    sock.expect(spec.Confirm.Select)
    sock.reply(method(2, spec.Channel.OpenOk()), method(2, spec.Confirm.SelectOk()))
    again = [sock.publish_frames()[2].message_id for _ in range(3)]
    assert again == ["m1", "m2", "m3"]
    sock.reply(ack(2, 3, multiple=True))
    assert result() == ([True, True, True], None)
    assert h.declared == [("gone", NOTIFY, False), ("gone", NOTIFY, True)]


def test_an_unreachable_broker_fails_the_whole_batch_before_anything_is_sent(harness):
    h = harness(connect_timeout=0.2)
    h.publisher.connect = lambda address, timeout: (_ for _ in ()).throw(ConnectionRefusedError("refused"))
    outcomes, error = publish_many_async(h, "notify", "ex", ["m1"])()
    assert outcomes is None and isinstance(error, BrokerUnavailable)


def test_a_blocked_broker_fails_the_lines_in_flight_and_refuses_the_next_batch_whole(harness):
    h = harness()
    result = publish_many_async(h, "notify", "ex", ["m1", "m2", "m3"])
    sock = h.connected()
    for _ in range(3):
        sock.publish_frames()
    sock.reply(ack(2, 1), method(0, spec.Connection.Blocked(reason="low on memory")))
    outcomes, error = result()
    assert error is None and outcomes[0] is True
    assert all(isinstance(o, BrokerUnavailable) and "blocked" in o.detail for o in outcomes[1:])
    outcomes, error = publish_many_async(h, "notify", "ex", ["m4"])()
    assert outcomes is None and isinstance(error, BrokerUnavailable) and "blocked" in error.detail
