"""The Broker's bookkeeping (hutch.amqp.client, handoff) on its I/O-thread callbacks, driven with a fake
connection: when it is ready, what a blocked or lost connection fails, and the request threads'
``Waiter``.  No thread is started and no socket opened."""

import threading

import pika
import pytest

from hutch.amqp import client, handoff
from hutch.amqp.rpc import Call
from hutch.errors import BrokerUnavailable

from .fake_amqp import FakeConnection


class Outcomes(list):
    def __call__(self, value, error):
        self.append((value, error))


@pytest.fixture
def broker():
    return client.Broker("amqp://guest:guest@127.0.0.1:1/%2F", retry_after=7)


@pytest.fixture
def connection(broker):
    """A connection the broker has just opened; its two confirm channels are open and selected."""
    connection = FakeConnection()
    broker._on_open(connection)
    assert not broker._ready.is_set()
    connection.open_channels()
    for channel in connection.channels:
        channel.ok()  # Confirm.SelectOk
    assert broker._ready.is_set()
    return connection


def call_in_flight(broker, connection):
    outcomes = Outcomes()
    message = type("Message", (), {"body": b"{}", "properties": pika.BasicProperties()})
    broker._state.rpc.call(Call("api", "add", message, 1.0, outcomes))
    connection.open_channels()
    connection.channels[-1].ok()  # Basic.ConsumeOk: the request is published
    return outcomes


def test_ready_once_both_publishers_have_confirms_selected(broker, connection):
    assert [channel.calls for channel in connection.channels] == [[("confirm_delivery",)]] * 2
    assert not broker._blocked and broker._state is not None


def test_a_blocked_connection_fails_the_calls_in_flight_until_unblocked(broker, connection):
    outcomes = call_in_flight(broker, connection)
    [on_blocked], [on_unblocked] = connection.on_blocked, connection.on_unblocked
    on_blocked(connection, None)
    assert broker._blocked
    [(value, error)] = outcomes
    assert value is None and isinstance(error, BrokerUnavailable) and "resource alarm" in error.detail
    on_unblocked(connection, None)
    assert not broker._blocked


def test_work_handed_before_a_block_and_run_after_it_fails_without_publishing(broker, connection):
    ran, outcomes = [], Outcomes()
    [on_blocked] = connection.on_blocked
    on_blocked(connection, None)  # read in the loop turn that then drains the handed work
    broker._run_handed(lambda state, resolve: ran.append(state), outcomes)
    [(value, error)] = outcomes
    assert not ran and value is None
    assert isinstance(error, BrokerUnavailable) and "resource alarm" in error.detail


def test_handed_work_runs_on_an_open_unblocked_connection(broker, connection):
    outcomes = Outcomes()
    broker._run_handed(lambda state, resolve: resolve(state is broker._state, None), outcomes)
    assert outcomes == [(True, None)]


def test_a_lost_connection_fails_everything_in_flight_with_retry_after_and_stops_the_loop(broker, connection):
    outcomes = call_in_flight(broker, connection)
    broker._on_close(connection, ConnectionResetError("gone"))
    [(value, error)] = outcomes
    assert value is None and isinstance(error, BrokerUnavailable) and ("Retry-After", "7") in error.headers
    assert broker._state is None and not broker._ready.is_set() and connection.ioloop.stopped


def test_work_handed_to_a_loop_that_ended_before_running_it_fails(broker):
    waiter = handoff.Waiter()
    broker._loop_open = True
    broker._handed.append((lambda: None, waiter))
    loop_connection = FakeConnection()
    broker._end_loop(loop_connection)
    assert waiter.wait(0) and isinstance(waiter.error, BrokerUnavailable)
    assert not broker._loop_open and loop_connection.ioloop.closed


def test_a_waiter_takes_the_first_answer_only():
    waiter = handoff.Waiter()
    assert not waiter.wait(0.01)
    waiter.resolve("first", None)
    waiter.resolve("second", ValueError())
    assert waiter.wait(0) and (waiter.value, waiter.error) == ("first", None)


def test_a_waiter_wakes_a_thread_waiting_on_it():
    waiter, woken = handoff.Waiter(), []
    thread = threading.Thread(target=lambda: woken.append(waiter.wait(10)))
    thread.start()
    waiter.resolve(1, None)
    thread.join(10)
    assert woken == [True]


def test_a_forked_child_gets_a_publisher_of_its_own_never_the_parents(broker, monkeypatch):
    """Fork safety is the Broker's: the direct publisher keeps no pid of its own."""
    parent_publisher = broker._publisher
    parent_publisher._thread = threading.Thread()  # as if the parent had published already
    monkeypatch.setattr(client.os, "getpid", lambda: broker._pid + 1)  # now in the child
    monkeypatch.setattr(client.Broker, "_run", lambda self: None)  # no I/O thread work
    broker.start()
    assert broker._publisher is not parent_publisher and broker._publisher._thread is None
    broker._thread.join(5)


def test_the_direct_connection_serves_amqp_and_amqps_unless_the_publisher_is_pika():
    for url in ("amqp://guest:guest@127.0.0.1:1/%2F", "amqps://guest:guest@127.0.0.1:1/%2F"):
        broker = client.Broker(url)
        assert broker.direct
        assert (broker._publisher.nodes.current.ssl_options is not None) is url.startswith("amqps:")
        assert not client.Broker(url, publisher="pika").direct
