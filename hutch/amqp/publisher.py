"""Publishing with publisher confirms, pipelined across request threads.

One confirm-mode channel carries the messages of many request threads at
once; each message waits for its own ``basic.ack``.  Messages are published
``mandatory`` so that a ``basic.return`` (which the broker sends before the
ack of the same message) tells us it reached no queue.
"""

import dataclasses
import logging
import time

from hutch import metrics
from hutch.amqp.confirms import ConfirmLedger, Resend
from hutch.amqp.outcomes import missing_exchange
from hutch.amqp.topology import NOTIFY
from hutch.errors import BrokerUnavailable, PublishNacked

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclasses.dataclass(eq=False)
class Pending:
    exchange: str
    message: object
    on_done: object  # on_done(routed: bool | None, error)
    deadline: float
    started: float = 0.0  # time.monotonic() when handed over, for the confirm latency metric
    attempts: int = 0
    returned: bool = False
    confirmed_only: bool = False  # a batch's: routed only on the broker's ack (``ConfirmLedger.closed``)

    @property
    def message_id(self):
        return self.message.properties.message_id


class ConfirmPublisher:
    """One confirm-mode channel and the messages it has in flight.

    ``kind`` is the exchange declaration (topology.BROADCAST or NOTIFY).
    ``trust_unconfirmed`` says whether a message the broker routed but never
    confirmed (its channel closed first) may count as delivered: true for
    broadcast's at-most-once, false for notify's nothing-lost promise.
    """

    def __init__(self, connection, topology, kind, publish_timeout, trust_unconfirmed):
        self.connection = connection
        self.topology = topology
        self.kind = kind
        self.publish_timeout = publish_timeout
        self.channel = None
        self.ready = False
        self.ledger = ConfirmLedger(trust_unconfirmed)
        self.backlog = []
        self.closing = False
        self.idiom = "notify" if kind is NOTIFY else "broadcast"  # the metrics' label

    # -- channel lifecycle -------------------------------------------------

    def open(self, on_ready=None):
        self.ready = False

        def opened(channel):
            self.channel = channel
            channel.add_on_close_callback(self._on_channel_closed)
            channel.add_on_return_callback(self._on_return)
            channel.confirm_delivery(self._on_confirm, callback=lambda _frame: selected())

        def selected():
            self.ready = True
            self.ledger.reset()
            backlog, self.backlog = self.backlog, []
            for item in backlog:
                self._publish_declared(item)
            if on_ready:
                on_ready()

        self.connection.channel(on_open_callback=opened)

    def _on_channel_closed(self, channel, reason):
        self.ready = False
        if self.closing or not self.connection.is_open:
            return
        exchange = missing_exchange(reason)
        if exchange is None:
            log.warning("publish channel closed by the broker: %s", reason)
        else:
            log.info("exchange %r has gone; declaring it again", exchange)
            self.topology.forget(exchange)
        for item, routed, error in self.ledger.closed(reason):
            if isinstance(error, Resend):  # discarded by the broker: publish again once declared
                self.publish(item)
            else:
                item.on_done(routed, error)
        self.open()

    def fail_in_flight(self, error):
        """Fail every message waiting for a confirm or a channel (blocked, or connection lost)."""
        outcomes = self.ledger.fail_all(error) + [(item, None, error) for item in self.backlog]
        self.backlog = []
        for item, routed, failure in outcomes:
            item.on_done(routed, failure)

    # -- publishing --------------------------------------------------------

    def publish(self, item):
        item.attempts += 1
        if item.attempts > MAX_ATTEMPTS:
            item.on_done(None, BrokerUnavailable("The exchange keeps disappearing; retry later."))
            return

        def declared(error):
            if error is not None:
                item.on_done(None, error)
            elif self.ready:
                self._publish_declared(item)
            else:
                self.backlog.append(item)

        self.topology.ensure_exchange(item.exchange, self.kind, declared)

    def _publish_declared(self, item):
        self.ledger.add(item)
        self.channel.basic_publish(
            item.exchange, "", item.message.body, item.message.properties, mandatory=True
        )

    def _on_return(self, channel, method, properties, body):
        self.ledger.mark_returned(method.exchange, properties.message_id)

    def _on_confirm(self, frame):
        method = frame.method
        acked = method.NAME == "Basic.Ack"
        now = time.monotonic() if acked else 0.0
        for item in self.ledger.confirmed(method.delivery_tag, method.multiple):
            if acked:
                metrics.publish_confirmed(self.idiom, now - item.started, not item.returned)
                item.on_done(not item.returned, None)
            else:
                item.on_done(None, PublishNacked())

    def expire(self, now):
        """Fail messages whose confirm is overdue (the broker may be blocked)."""
        overdue = self.ledger.take_overdue(now)
        overdue += [item for item in self.backlog if item.deadline <= now]
        self.backlog = [item for item in self.backlog if item.deadline > now]
        for item in overdue:
            item.on_done(None, BrokerUnavailable("The broker did not confirm the message in time."))

    def new_item(self, exchange, message, on_done, confirmed_only=False):
        now = time.monotonic()
        return Pending(
            exchange, message, on_done, now + self.publish_timeout, now, confirmed_only=confirmed_only
        )
