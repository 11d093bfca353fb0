"""The bookkeeping of one confirm-mode channel, shared by both publishers.

pika's I/O-thread path (``publisher.ConfirmPublisher``) and the direct path
(``direct_publisher``) keep the same promises, so they keep one ledger: a
delivery tag per publish, Ack/Nack (``multiple``) settling them in tag
order, a Basic.Return marking the publish it belongs to, and what a
channel closed by the broker means for each publish still waiting.  The
ledger does no I/O and takes no lock: each owner calls it from one thread
(the I/O thread) or under its own lock.

The direct path's side of it is here too: its ledger per channel
(``ConfirmChannel``), the item a request thread waits on (``Publish``, or a
batch's ``Countdown``) and ``resolve``, which releases the waiting threads of
the outcomes a ledger returns.
"""

import collections
import dataclasses
import threading

from hutch.amqp.outcomes import error_for_close, missing_exchange
from hutch.errors import BrokerUnavailable


class Resend(Exception):
    """The broker discarded the publish (its channel closed on a missing exchange); send it again."""

    def __init__(self, missing):
        super().__init__(missing)
        self.missing = missing  # the exchange the broker said is gone (None: the channel reopened)


class ConfirmLedger:
    """The publishes one channel has in flight, by delivery tag.

    Items need ``exchange``, ``message_id`` and a ``returned`` flag.
    ``trust_unconfirmed``: a publish the broker handled before its channel
    closed may count as delivered (broadcast's at-most-once), or must fail
    (notify's nothing-lost promise); an item's ``confirmed_only`` (a
    batch's, which reports each line as confirmed) makes it fail too.
    """

    def __init__(self, trust_unconfirmed):
        self.trust_unconfirmed = trust_unconfirmed
        self.reset()

    def reset(self):
        """A new channel: tags start at 1 again."""
        self.next_tag = 1
        self.pending = collections.OrderedDict()  # tag -> item, in tag order
        self.returned_after = 0  # the tag of the last publish a Basic.Return marked

    def add(self, item):
        """Record a publish about to be sent; its delivery tag."""
        tag = self.next_tag
        self.next_tag += 1
        self.pending[tag] = item
        return tag

    def confirmed(self, tag, multiple):
        """The publishes an Ack or Nack names, removed from ``pending``."""
        pending = self.pending
        if not multiple:
            item = pending.pop(tag, None)
            return [item] if item is not None else []
        done = []
        while pending and next(iter(pending)) <= tag:
            done.append(pending.popitem(last=False)[1])
        return done

    def mark_returned(self, exchange, message_id):
        """A Basic.Return arrived: mark the publish it belongs to.

        The broker handles a channel's publishes in order and sends a return
        before the ack of the same message, so the returned message is the
        first unconfirmed one with this exchange and message_id after the
        one the previous return marked (an Idempotency-Key may repeat ids).
        """
        for tag, item in self.pending.items():
            if tag > self.returned_after and item.exchange == exchange and item.message_id == message_id:
                item.returned = True
                self.returned_after = tag
                return

    def closed(self, reason):
        """The broker closed the channel: each waiting publish's outcome, as (item, routed, error).

        ``error`` is a ``Resend`` for a publish the broker discarded because
        an exchange before it in the channel was missing.
        """
        items = list(self.pending.values())
        self.reset()
        exchange = missing_exchange(reason)
        if exchange is None:
            error = error_for_close(reason)
            return [(item, None, error) for item in items]
        # Publishes before the first one to the missing exchange were routed (a return would have
        # come); the rest were discarded and are safe to send again once the exchange exists.
        first = next((i for i, item in enumerate(items) if item.exchange == exchange), len(items))
        outcomes = []
        for item in items[:first]:
            if self.trust_unconfirmed and not getattr(item, "confirmed_only", False):
                outcomes.append((item, not item.returned, None))
            else:
                lost = BrokerUnavailable("The broker closed the channel before confirming.")
                outcomes.append((item, None, lost))
        outcomes += [(item, None, Resend(exchange)) for item in items[first:]]
        return outcomes

    def fail_all(self, error):
        """Every waiting publish fails with ``error`` (blocked, connection lost); tags go on."""
        items = list(self.pending.values())
        self.pending.clear()
        return [(item, None, error) for item in items]

    def take_overdue(self, now):
        """Remove and return the publishes whose ``deadline`` has passed."""
        overdue = [tag for tag, item in self.pending.items() if item.deadline <= now]
        return [self.pending.pop(tag) for tag in overdue]


@dataclasses.dataclass(eq=False, slots=True)
class Publish:
    """One message waiting for its confirm; ``resolve`` releases the waiting request thread."""

    exchange: str
    message_id: str
    lock: object
    returned: bool = False
    routed: object = None
    error: object = None
    confirmed_only: bool = False  # a batch's: routed only on the broker's ack (``ConfirmLedger.closed``)

    def resolve(self, routed, error):
        self.routed, self.error = routed, error
        self.lock.release()


class Countdown:
    """What a batch's publishes release: the waiting request thread wakes once all are settled.

    Each publish is settled once, by the reader or by the request thread that gave up on it
    (whoever took it out of ``pending``), so ``release`` may come from either thread.
    """

    def __init__(self, count):
        self.remaining = count
        self._count = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()

    def release(self):
        with self._count:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self._done.release()

    def acquire(self, timeout=-1):
        return self._done.acquire(timeout=timeout)


class ConfirmChannel(ConfirmLedger):
    """One confirm-mode channel of the direct connection: its number, whether it is open, and
    its ledger.  Runs under the publisher's lock."""

    def __init__(self, number, idiom, trust_unconfirmed):
        self.number = number
        self.idiom = idiom
        self.opened = threading.Event()
        super().__init__(trust_unconfirmed)

    def reset(self):
        self.opened.clear()
        super().reset()


def resolve(outcomes):
    """Release the waiting thread of each (item, routed, error) a ledger (or ``RpcChannels``) returned."""
    for item, routed, error in outcomes:
        item.resolve(routed, error)
