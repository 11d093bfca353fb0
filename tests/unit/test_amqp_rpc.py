"""The RPC state machine (hutch.amqp.rpc) against a fake connection: one call per channel,
replies matched by correlation id, and a channel retired whenever a late reply could follow."""

import pika.spec
import pytest

from hutch.amqp import rpc
from hutch.errors import BrokerUnavailable, NoResponder, PreconditionFailed, RpcTimeout

from .fake_amqp import FakeConnection


class Outcomes(list):
    """``on_done(reply, error)`` of every call, in order."""

    def __call__(self, reply, error):
        self.append((reply, error))


@pytest.fixture
def connection():
    return FakeConnection()


@pytest.fixture
def pool(connection):
    return rpc.RpcPool(connection)


def make_call(outcomes, timeout=2.0, correlation_id="c1"):
    message = type("Message", (), {"body": b'{"a":1}', "properties": pika.spec.BasicProperties(app_id="x")})
    return rpc.Call("api", "add", message, timeout, outcomes, correlation_id=correlation_id)


def started(pool, connection, call):
    """Ask for ``call`` on a new channel and let the broker open it and start the consumer."""
    pool.call(call)
    connection.open_channels()
    channel = connection.channels[-1]
    channel.ok()  # Basic.ConsumeOk
    return channel


def test_a_call_consumes_direct_reply_to_then_publishes_mandatory_with_its_ids(pool, connection):
    outcomes = Outcomes()
    call = make_call(outcomes, timeout=2.5)
    channel = started(pool, connection, call)
    assert channel.calls[0] == ("basic_consume", "amq.rabbitmq.reply-to", True)
    _, exchange, routing_key, body, properties, mandatory = channel.calls[1]
    assert (exchange, routing_key, body, mandatory) == ("api", "add", b'{"a":1}', True)
    assert properties.reply_to == "amq.rabbitmq.reply-to"
    assert properties.correlation_id == "c1" and properties.expiration == "2500"
    assert properties.app_id == "x" and call.message.properties.reply_to is None  # the caller's untouched
    assert [delay for delay, _ in connection.ioloop.timers.values()] == [2.5]
    assert outcomes == []


def test_a_correlated_reply_ends_the_call_and_the_channel_carries_the_next(pool, connection):
    first, second = Outcomes(), Outcomes()
    channel = started(pool, connection, make_call(first))
    channel.deliver(b"answer", correlation_id="c1")
    [(reply, error)] = first
    assert error is None and reply.body == b"answer" and reply.properties.correlation_id == "c1"
    assert connection.ioloop.timers == {}  # the timeout was cancelled
    assert pool.idle == [pool.idle[0]] and pool.idle[0].channel is channel

    pool.call(make_call(second, correlation_id="c2"))
    assert len(connection.channels) == 1  # reused: no new channel
    channel.deliver(b"again", correlation_id="c2")
    assert second[0][0].body == b"again"


def test_a_reply_for_another_call_is_dropped_and_the_call_keeps_waiting(pool, connection):
    outcomes = Outcomes()
    channel = started(pool, connection, make_call(outcomes))
    channel.deliver(b"stray", correlation_id="someone-else")
    assert outcomes == [] and channel.is_open
    channel.deliver(b"mine", correlation_id="c1")
    assert outcomes[0][0].body == b"mine"


def test_an_uncorrelated_reply_is_taken_but_its_channel_is_never_reused(pool, connection):
    first, second = Outcomes(), Outcomes()
    channel = started(pool, connection, make_call(first))
    channel.deliver(b"seed-style answer")  # the responder did not copy correlation_id
    assert first[0][0].body == b"seed-style answer"
    assert not channel.is_open and ("close",) in channel.calls
    assert pool.idle == [] and pool.all == set()

    channel.deliver(b"a second answer")  # may follow; reaches no call
    pool.call(make_call(second, correlation_id="c2"))
    assert len(connection.channels) == 2 and second == []


def test_a_timeout_answers_504_and_retires_the_channel_so_no_later_call_gets_a_late_reply(pool, connection):
    first, second = Outcomes(), Outcomes()
    channel = started(pool, connection, make_call(first, timeout=0.5))
    [timer] = connection.ioloop.timers
    connection.ioloop.fire(timer)
    [(reply, error)] = first
    assert reply is None and isinstance(error, RpcTimeout) and "0.5 s" in error.detail
    assert not channel.is_open

    later = started(pool, connection, make_call(second, correlation_id="c2"))
    assert later is not channel
    channel.deliver(b"late", correlation_id="c1")
    assert second == [] and len(first) == 1


def test_a_returned_request_means_no_responder_and_the_channel_stays_usable(pool, connection):
    outcomes = Outcomes()
    channel = started(pool, connection, make_call(outcomes))
    channel.return_message("api", "add", b"{}", correlation_id="c1")
    [(reply, error)] = outcomes
    assert reply is None and isinstance(error, NoResponder) and "'add'" in error.detail
    assert channel.is_open and pool.idle[0].channel is channel
    channel.return_message("api", "add", b"{}", correlation_id="c1")  # a duplicate return: no call, ignored
    assert len(outcomes) == 1


@pytest.mark.parametrize(
    ("code", "connection_open", "error_class", "words"),
    [
        (404, True, NoResponder, "does not exist"),
        (406, True, PreconditionFailed, "refused"),
        (320, False, BrokerUnavailable, "lost during the call"),
    ],
)
def test_a_channel_closed_under_a_call_fails_it_by_the_reason(
    pool, connection, code, connection_open, error_class, words
):
    outcomes = Outcomes()
    channel = started(pool, connection, make_call(outcomes))
    connection.is_open = connection_open
    channel.closed_by_broker(code, "NOT_FOUND - no exchange 'api' in vhost '/'")
    [(reply, error)] = outcomes
    assert reply is None and isinstance(error, error_class) and words in error.detail
    assert pool.all == set() and pool.idle == []


def test_a_call_failed_while_its_channel_opens_closes_the_channel_once_open(pool, connection):
    outcomes = Outcomes()
    pool.call(make_call(outcomes))
    pool.fail_in_flight(BrokerUnavailable("blocked"))
    assert [error.detail for _, error in outcomes] == ["blocked"]
    connection.open_channels()
    [channel] = connection.channels
    assert channel.calls == [("close",)]  # never consumes, never publishes


def test_blocking_fails_the_calls_in_flight_and_retires_their_channels(pool, connection):
    first, second = Outcomes(), Outcomes()
    one = started(pool, connection, make_call(first))
    two = started(pool, connection, make_call(second, correlation_id="c2"))
    pool.fail_in_flight(BrokerUnavailable("blocked"))
    assert [error.detail for _, error in first + second] == ["blocked", "blocked"]
    assert not one.is_open and not two.is_open and connection.ioloop.timers == {}


def test_a_lost_connection_fails_every_call_once(pool, connection):
    first, second = Outcomes(), Outcomes()
    started(pool, connection, make_call(first))
    pool.call(make_call(second, correlation_id="c2"))  # its channel not open yet
    pool.abort(BrokerUnavailable("gone"))
    assert [error.detail for _, error in first + second] == ["gone", "gone"]
    assert pool.all == set() and pool.idle == []


def test_idle_channels_beyond_the_limit_are_closed(pool, connection, monkeypatch):
    monkeypatch.setattr(rpc, "MAX_IDLE_CHANNELS", 1)
    first, second = Outcomes(), Outcomes()
    one = started(pool, connection, make_call(first))
    two = started(pool, connection, make_call(second, correlation_id="c2"))
    one.deliver(b"1", correlation_id="c1")
    two.deliver(b"2", correlation_id="c2")
    assert [idle.channel for idle in pool.idle] == [one]
    assert not two.is_open
