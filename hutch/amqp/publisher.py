"""Publishing with publisher confirms, pipelined across request threads.

One confirm-mode channel carries the messages of many request threads at
once; each message waits for its own ``basic.ack``.  Messages are published
``mandatory`` so that a ``basic.return`` (which the broker sends before the
ack of the same message) tells us it reached no queue.
"""

import collections
import dataclasses
import logging
import time

from .. import metrics
from ..errors import BrokerUnavailable, PublishNacked
from .outcomes import error_for_close, missing_exchange
from .topology import NOTIFY

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
        self.trust_unconfirmed = trust_unconfirmed
        self.channel = None
        self.ready = False
        self.next_tag = 1
        self.pending = collections.OrderedDict()
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
            self.next_tag = 1
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
        items = list(self.pending.values())
        self.pending.clear()
        if exchange is None:
            log.warning("publish channel closed by the broker: %s", reason)
            for item in items:
                item.on_done(None, error_for_close(reason))
        else:
            self._recover_missing_exchange(exchange, items)
        self.open()

    def _recover_missing_exchange(self, exchange, items):
        """An exchange vanished (auto-delete) and a publish to it closed the channel.

        The broker handles a channel's publishes in order: messages before
        the first one to the missing exchange were routed (a return would
        already have arrived), the rest were discarded and are safe to send
        again once the exchange is declared anew.
        """
        log.info("exchange %r has gone; declaring it again", exchange)
        self.topology.forget(exchange)
        first = next((i for i, item in enumerate(items) if item.exchange == exchange), len(items))
        for item in items[:first]:
            if self.trust_unconfirmed:
                item.on_done(not item.returned, None)
            else:
                item.on_done(None, BrokerUnavailable("The broker closed the channel before confirming."))
        for item in items[first:]:
            self.publish(item)

    def fail_in_flight(self, error):
        """Fail every message waiting for a confirm or a channel (blocked, or connection lost)."""
        items = list(self.pending.values()) + self.backlog
        self.pending.clear()
        self.backlog = []
        for item in items:
            item.on_done(None, error)

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
        tag = self.next_tag
        self.next_tag += 1
        self.pending[tag] = item
        self.channel.basic_publish(
            item.exchange, "", item.message.body, item.message.properties, mandatory=True
        )

    def _on_return(self, channel, method, properties, body):
        for item in self.pending.values():
            if (
                not item.returned
                and item.exchange == method.exchange
                and item.message.properties.message_id == properties.message_id
            ):
                item.returned = True
                return

    def _on_confirm(self, frame):
        method = frame.method
        acked = method.NAME == "Basic.Ack"
        if method.multiple:
            tags = [tag for tag in self.pending if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self.pending else []
        now = time.monotonic() if acked else 0.0
        for tag in tags:
            item = self.pending.pop(tag)
            if acked:
                metrics.publish_confirmed(self.idiom, now - item.started, not item.returned)
                item.on_done(not item.returned, None)
            else:
                item.on_done(None, PublishNacked())

    def expire(self, now):
        """Fail messages whose confirm is overdue (the broker may be blocked)."""
        overdue = [self.pending.pop(tag) for tag, item in list(self.pending.items()) if item.deadline <= now]
        overdue += [item for item in self.backlog if item.deadline <= now]
        self.backlog = [item for item in self.backlog if item.deadline > now]
        for item in overdue:
            item.on_done(None, BrokerUnavailable("The broker did not confirm the message in time."))

    def new_item(self, exchange, message, on_done):
        now = time.monotonic()
        return Pending(exchange, message, on_done, now + self.publish_timeout, started=now)
