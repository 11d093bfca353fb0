"""Declarations (hutch.amqp.topology) against a fake connection: each on a channel of its own,
cached, shared by concurrent requests, and a history stream bound before the exchange is used."""

import re

import pytest

from hutch.amqp.history import HistoryPolicy
from hutch.amqp.topology import BROADCAST, NOTIFY, Topology
from hutch.errors import BrokerUnavailable, PreconditionFailed

from .fake_amqp import FakeConnection

CLASH = (
    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'n.c' in vhost '/': "
    "received 'classic' but current is 'quorum'"
)


class Results(list):
    def __call__(self, *outcome):
        self.append(outcome[0] if len(outcome) == 1 else outcome)


@pytest.fixture
def connection():
    return FakeConnection()


def answer_all(connection):
    """The broker opens every channel asked for and answers every request on it, until none is left."""
    while connection.opening or any(channel.pending for channel in connection.channels):
        connection.open_channels()
        for channel in connection.channels:
            while channel.pending:
                channel.ok()


def declared(connection):
    """The broker opens the one channel asked for and answers its exchange declare."""
    connection.open_channels()
    connection.channels[-1].ok()


def operations(connection):
    return [call for channel in connection.channels for call in channel.calls]


def test_an_exchange_is_declared_once_on_its_own_channel_then_cached(connection):
    topology, results = Topology(connection), Results()
    topology.ensure_exchange("scores", BROADCAST, results)
    answer_all(connection)
    [channel] = connection.channels
    assert channel.calls == [
        ("exchange_declare", "scores", {"exchange_type": "fanout", "durable": False, "auto_delete": True}),
        ("close",),
    ]
    topology.ensure_exchange("scores", BROADCAST, results)
    assert results == [None, None] and len(connection.channels) == 1
    assert topology.tasks == set()


def test_concurrent_requests_for_one_exchange_share_one_declare(connection):
    topology, first, second = Topology(connection), Results(), Results()
    topology.ensure_exchange("orders", NOTIFY, first)
    topology.ensure_exchange("orders", NOTIFY, second)
    assert first == second == []
    answer_all(connection)
    assert first == second == [None] and len(connection.channels) == 1


def test_a_refused_declare_fails_every_waiter_and_is_not_cached(connection):
    topology, first, second = Topology(connection), Results(), Results()
    topology.ensure_exchange("orders", NOTIFY, first)
    topology.ensure_exchange("orders", NOTIFY, second)
    connection.open_channels()
    connection.channels[0].closed_by_broker(406, "PRECONDITION_FAILED - inequivalent arg 'durable'")
    assert isinstance(first[0], PreconditionFailed) and second == first
    topology.ensure_exchange("orders", NOTIFY, Results())
    assert len(connection.channels) == 2  # declared again


def test_a_forgotten_exchange_is_declared_again(connection):
    topology = Topology(connection)
    topology.ensure_exchange("scores", BROADCAST, Results())
    answer_all(connection)
    topology.forget("scores")
    topology.ensure_exchange("scores", BROADCAST, Results())
    assert len(connection.channels) == 2


def test_an_exchange_with_history_is_usable_only_after_its_stream_is_declared_and_bound(connection):
    history = HistoryPolicy(patterns=re.compile("scores"))
    topology, results = Topology(connection, history=history), Results()
    topology.ensure_exchange("scores", BROADCAST, results)
    connection.open_channels()
    connection.channels[0].ok()  # Exchange.DeclareOk
    assert results == []
    connection.open_channels()
    stream = connection.channels[1]
    stream.ok()  # Queue.DeclareOk
    assert results == []
    stream.ok()  # Queue.BindOk
    assert results == [None]
    assert [call[:3] for call in operations(connection)] == [
        ("exchange_declare", "scores", BROADCAST),
        ("close",),
        ("queue_declare", history.queue("scores"), {"durable": True, "arguments": history.arguments()}),
        ("queue_bind", history.queue("scores"), "scores"),
        ("close",),
    ]


def history_stream_channel(connection, results):
    """Ask for the exchange ``scores`` (with history) and answer its declare: the stream's channel."""
    topology = Topology(connection, history=HistoryPolicy(patterns=re.compile("scores")))
    topology.ensure_exchange("scores", BROADCAST, results)
    connection.open_channels()
    connection.channels[0].ok()
    connection.open_channels()
    return topology, connection.channels[1]


def test_a_stream_declared_with_other_arguments_is_bound_as_it_is(connection):
    results = Results()
    _topology, stream = history_stream_channel(connection, results)
    stream.closed_by_broker(406, "PRECONDITION_FAILED - inequivalent arg 'x-max-age'")
    answer_all(connection)
    assert results == [None]
    assert connection.channels[2].calls[:2] == [
        ("queue_declare", HistoryPolicy.queue("scores"), {"passive": True}),
        ("queue_bind", HistoryPolicy.queue("scores"), "scores"),
    ]


def test_a_stream_that_cannot_be_bound_fails_the_declaration_uncached(connection):
    results = Results()
    topology, stream = history_stream_channel(connection, results)
    stream.closed_by_broker(404, "NOT_FOUND - stream not available")
    assert isinstance(results[0], BrokerUnavailable)
    topology.ensure_exchange("scores", BROADCAST, Results())
    assert len(connection.channels) == 3  # tried again


@pytest.mark.parametrize(
    ("probe_code", "declare_code", "expected"),
    [(404, None, (True, "quorum")), (None, None, (False, "quorum")), (None, 406, (False, "quorum"))],
)
def test_a_consumer_queue_is_probed_declared_typed_then_bound(connection, probe_code, declare_code, expected):
    topology, results = Topology(connection), Results()
    wanted = "classic" if declare_code else "quorum"  # a clash names the existing type: quorum
    topology.ensure_consumer_queue("orders", "orders.billing", wanted, results)
    declared(connection)
    connection.open_channels()
    probe = connection.channels[-1]
    if probe_code:
        probe.closed_by_broker(probe_code, "NOT_FOUND - no queue 'orders.billing'")
    else:
        probe.ok()
    connection.open_channels()
    declare = connection.channels[-1]
    if declare_code:
        declare.closed_by_broker(declare_code, CLASH)
    else:
        declare.ok()
    answer_all(connection)  # the bind
    assert results == [(expected, None)]
    assert operations(connection)[-2] == ("queue_bind", "orders.billing", "orders")


def test_a_consumer_queue_the_broker_refuses_outright_is_an_error(connection):
    topology, results = Topology(connection), Results()
    topology.ensure_consumer_queue("orders", "orders.billing", "quorum", results)
    declared(connection)
    connection.open_channels()
    connection.channels[-1].closed_by_broker(403, "ACCESS_REFUSED - no access")
    [(result, error)] = results
    assert result is None and error.status == 403


def test_a_lost_connection_fails_every_declaration_in_flight_once(connection):
    topology, first, second = Topology(connection), Results(), Results()
    topology.ensure_exchange("a", NOTIFY, first)
    topology.ensure_exchange("b", BROADCAST, second)
    connection.open_channels()
    reason = ConnectionResetError("gone")
    topology.abort(reason)
    assert isinstance(first[0], BrokerUnavailable) and isinstance(second[0], BrokerUnavailable)
    connection.channels[0].ok()  # a frame after the end changes nothing
    assert len(first) == 1 and topology.tasks == set()
