"""hutch.amqp.confirms: the confirm ledger both publishers keep (no broker)."""

import dataclasses

from pika import spec

from hutch.amqp.confirms import ConfirmLedger, Resend
from hutch.errors import BrokerUnavailable, PreconditionFailed


@dataclasses.dataclass(eq=False)
class Item:
    exchange: str
    message_id: str
    deadline: float = 0.0
    returned: bool = False


def missing(exchange):
    return spec.Channel.Close(404, f"NOT_FOUND - no exchange '{exchange}' in vhost '/'", 60, 40)


def ledger_with(*items, trust_unconfirmed=True):
    ledger = ConfirmLedger(trust_unconfirmed)
    tags = [ledger.add(item) for item in items]
    return ledger, tags


def test_tags_count_from_one_and_a_single_ack_settles_only_its_own_publish():
    a, b, c = Item("x", "1"), Item("x", "2"), Item("x", "3")
    ledger, tags = ledger_with(a, b, c)
    assert tags == [1, 2, 3]
    assert ledger.confirmed(2, multiple=False) == [b]
    assert ledger.confirmed(2, multiple=False) == []  # a repeated ack settles nothing
    assert list(ledger.pending) == [1, 3]


def test_a_multiple_ack_settles_everything_up_to_its_tag_in_order():
    items = [Item("x", str(n)) for n in range(5)]
    ledger, _ = ledger_with(*items)
    assert ledger.confirmed(3, multiple=True) == items[:3]
    assert list(ledger.pending) == [4, 5]


def test_returns_mark_publishes_in_order_even_when_message_ids_repeat():
    # An Idempotency-Key is the message_id: two publishes in flight may share it.
    first, other, second = Item("x", "k"), Item("y", "k"), Item("x", "k")
    ledger, _ = ledger_with(first, other, second)
    ledger.mark_returned("x", "k")
    assert (first.returned, other.returned, second.returned) == (True, False, False)
    ledger.mark_returned("x", "k")
    assert (first.returned, other.returned, second.returned) == (True, False, True)


def test_a_missing_exchange_settles_what_came_before_and_resends_the_rest():
    before, gone, after = Item("kept", "1"), Item("gone", "2"), Item("kept", "3")
    before.returned = True
    ledger, _ = ledger_with(before, gone, after)
    outcomes = ledger.closed(missing("gone"))
    assert outcomes[0] == (before, False, None)  # routed nowhere, as its return said
    assert [(item, type(error)) for item, _, error in outcomes[1:]] == [(gone, Resend), (after, Resend)]
    assert outcomes[1][2].missing == "gone"
    assert ledger.pending == {} and ledger.add(Item("x", "4")) == 1  # a new channel counts again


def test_notify_never_counts_an_unconfirmed_publish_as_delivered():
    before, gone = Item("kept", "1"), Item("gone", "2")
    ledger, _ = ledger_with(before, gone, trust_unconfirmed=False)
    (item, routed, error), (_, _, resend) = ledger.closed(missing("gone"))
    assert item is before and routed is None and isinstance(error, BrokerUnavailable)
    assert isinstance(resend, Resend)


def test_another_close_fails_every_publish_as_the_broker_meant_it():
    ledger, _ = ledger_with(Item("x", "1"), Item("x", "2"))
    outcomes = ledger.closed(spec.Channel.Close(406, "PRECONDITION_FAILED - inequivalent arg", 40, 10))
    assert [type(error) for _, _, error in outcomes] == [PreconditionFailed, PreconditionFailed]


def test_failing_all_keeps_the_channel_s_tag_count():
    ledger, _ = ledger_with(Item("x", "1"), Item("x", "2"))
    error = BrokerUnavailable("blocked")
    assert [outcome[2] for outcome in ledger.fail_all(error)] == [error, error]
    assert ledger.add(Item("x", "3")) == 3  # the channel is still open: the broker counts on


def test_overdue_publishes_are_taken_out_and_the_rest_stay():
    late, fresh = Item("x", "1", deadline=1.0), Item("x", "2", deadline=9.0)
    ledger, _ = ledger_with(late, fresh)
    assert ledger.take_overdue(5.0) == [late]
    assert list(ledger.pending.values()) == [fresh]
