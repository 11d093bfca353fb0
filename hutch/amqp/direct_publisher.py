"""Confirmed publishing for broadcast and notify without pika's I/O loop.

Handing each publish to pika's I/O thread costs more than the publish:
the wake-up, epoll switching the socket to write-readiness and back, and
an extra failing ``recv`` per read.  Here the request thread does the work
itself: it encodes its frames, takes the next delivery tag and queues the
bytes under one lock (``direct_connection``: the connection's state, its
writes and its reader thread).  The reader decodes Ack/Nack/Return and
releases the waiting request threads (``confirms``: the ledger of each
channel); it also answers closes and Connection.Blocked.

The guarantees are those of the pika path (``publisher.ConfirmPublisher``):
mandatory publishes on two confirm-mode channels (broadcast, notify); a 202
only after the broker's ack; a Basic.Return marks its publish unroutable; a
lost or closed connection fails every publish in flight with 503 at once; a
Connection.Blocked fails them and refuses new ones until unblocked; a
publish to an exchange the broker reports gone is declared again and sent
again.  Declarations stay on the pika connection (``Broker``), which also
keeps subscriptions.  RPC calls run here too, on channels of their own
after the two confirm channels (``direct_rpc``): the request thread sends
its call and the reader releases it with the reply.
"""

import logging
import threading
import time

from pika import spec

from hutch import metrics
from hutch.amqp import wire
from hutch.amqp.confirms import Countdown, Publish, Resend, resolve
from hutch.amqp.direct_connection import DIRECT, DirectConnection
from hutch.amqp.direct_rpc import NoChannel, RpcCall
from hutch.amqp.handshake import CHANNELS_NEEDED, ConnectionFailed
from hutch.amqp.outcomes import blocked, missing_exchange
from hutch.errors import BrokerUnavailable, HutchError, NoResponder, PublishNacked, RpcTimeout

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # an exchange that keeps disappearing is a 503


class DirectPublisher(DirectConnection):
    """One AMQP connection per process for confirmed publishes and RPC calls; see the module docstring.

    Made as a ``direct_connection.DirectConnection`` (``nodes``, ``declare``, ``connect`` ...),
    which it extends with what request threads call and what the reader does with each frame.
    """

    # -- what request threads call -----------------------------------------

    def publish(self, idiom, kind, exchange, message):
        """Publish mandatory on the ``idiom`` channel; return whether a queue got it (after the ack).

        The owner calls ``start`` first (``Broker`` does on every request, and makes a new
        publisher after a fork); until the connection is open this starts it too.
        """
        started = time.monotonic()
        channel = self.channels[idiom]
        deadline = None  # publish_timeout bounds everything after the connection is there
        for _attempt in range(MAX_ATTEMPTS):
            key = (exchange, idiom)
            if key not in self._declared:
                self.declare(exchange, kind, again=False)
                self._declared.add(key)
            self._wait_ready()
            if deadline is None:
                deadline = time.monotonic() + self.publish_timeout
            try:
                routed = self._publish_once(channel, exchange, message, deadline)
            except Resend as resend:
                if resend.missing == exchange:
                    log.info("exchange %r has gone; declaring it again", exchange)
                    self._declared.discard(key)
                    self.declare(exchange, kind, again=True)
                    self._declared.add(key)
                continue
            metrics.publish_confirmed(idiom, time.monotonic() - started, routed)
            return routed
        raise BrokerUnavailable("The exchange keeps disappearing; retry later.", self.retry_after)

    def _publish_once(self, channel, exchange, message, deadline):
        if not channel.opened.is_set() and not channel.opened.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable("The broker did not open the channel in time.", self.retry_after)
        if self._blocked:
            raise blocked(self.retry_after)
        generation = self._generation
        data = wire.publish(channel.number, exchange, message.body, message.properties, self._frame_max)
        lock = threading.Lock()
        lock.acquire()
        item = Publish(exchange, message.properties.message_id, lock)
        with self._lock:
            if generation != self._generation:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if not channel.opened.is_set():  # closed by the broker meanwhile, and being opened again
                raise Resend(None)
            tag = channel.add(item)
            self._outbox.append(data)
            send = self._claim_send()
        if send:
            self._flush()
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            with self._lock:
                gave_up = channel.pending.get(tag) is item and channel.pending.pop(tag)
            if gave_up:
                raise BrokerUnavailable("The broker did not confirm the message in time.", self.retry_after)
            lock.acquire()  # the reader took it out of pending: its outcome is being set
        if item.error is not None:
            raise item.error
        return item.routed

    def publish_many(self, idiom, kind, exchange, messages):
        """Publish ``messages`` mandatory on the ``idiom`` channel under one lock hold, then wait for
        every confirm.  Returns one outcome per message, in order: whether a queue got it (after
        its ack) or the ``HutchError`` it failed with.  Every publish is ``confirmed_only``: a
        channel closed before the ack fails it, even on broadcast's channel.

        Raises, with nothing sent, where one publish would (broker unreachable or blocked, the
        exchange not declarable); once sent, a failure is a publish's outcome.
        """
        started = time.monotonic()
        channel = self.channels[idiom]
        key = (exchange, idiom)
        outcomes = [None] * len(messages)
        todo = list(range(len(messages)))
        deadline = None
        for attempt in range(MAX_ATTEMPTS):
            try:
                if key not in self._declared:
                    self.declare(exchange, kind, again=attempt > 0)
                    self._declared.add(key)
                self._wait_ready()
                if deadline is None:
                    deadline = time.monotonic() + self.publish_timeout
                items = self._publish_many_once(channel, exchange, [messages[i] for i in todo], deadline)
            except Resend:  # the channel reopened before anything was sent: send all of them again
                continue
            except HutchError as error:  # before anything of this attempt was sent
                if attempt == 0:
                    raise
                items = [error] * len(todo)
            again = []
            for index, item in zip(todo, items, strict=True):
                error = item if isinstance(item, Exception) else item.error
                if isinstance(error, Resend):
                    if error.missing == exchange:
                        self._declared.discard(key)
                    again.append(index)
                else:
                    outcomes[index] = item.routed if error is None else error
            todo = again
            if not todo:
                break
            log.info(
                "exchange %r has gone; declaring it again for %d publishes of a batch", exchange, len(todo)
            )
        for index in todo:
            outcomes[index] = BrokerUnavailable(
                "The exchange keeps disappearing; retry later.", self.retry_after
            )
        confirmed = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
        metrics.publish_confirmed_many(
            idiom, time.monotonic() - started, len(confirmed), confirmed.count(False)
        )
        return outcomes

    def _publish_many_once(self, channel, exchange, messages, deadline):
        """Send ``messages`` in one lock hold and wait for all their confirms; their ``Publish`` items."""
        if not channel.opened.is_set() and not channel.opened.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable("The broker did not open the channel in time.", self.retry_after)
        if self._blocked:
            raise blocked(self.retry_after)
        generation = self._generation
        frame_max, number = self._frame_max, channel.number
        data = wire.publish_all(number, exchange, messages, frame_max)
        countdown = Countdown(len(messages))
        items = [Publish(exchange, m.properties.message_id, countdown, confirmed_only=True) for m in messages]
        with self._lock:
            if generation != self._generation:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if not channel.opened.is_set():
                raise Resend(None)
            tags = [channel.add(item) for item in items]
            self._outbox.append(data)
            send = self._claim_send()
        if send:
            self._flush()
        if not countdown.acquire(timeout=max(0.0, deadline - time.monotonic())):
            pending = channel.pending
            with self._lock:
                given_up = [
                    pending.pop(tag)
                    for tag, item in zip(tags, items, strict=True)
                    if pending.get(tag) is item
                ]
            late = BrokerUnavailable("The broker did not confirm the message in time.", self.retry_after)
            for item in given_up:
                item.resolve(None, late)
            countdown.acquire()  # the reader settles the ones it took out of pending
        return items

    def call(self, exchange, routing_key, message, timeout):
        """Publish an RPC request and wait for its reply (an ``rpc.Reply``), as ``rpc`` promises.

        One lock hold takes a channel (an idle one, or a new one opened in the same write) and
        queues the request; the reader releases ``call.lock`` with the reply or the failure.
        """
        self._wait_ready()
        call = RpcCall.new(exchange, routing_key, timeout)
        properties = call.properties(message.properties)
        with self._lock:
            if self._sock is None:
                raise BrokerUnavailable("The connection to the broker was lost.", self.retry_after)
            if self._blocked:  # under the lock: never queued after the reader failed those in flight
                raise blocked(self.retry_after)
            try:
                channel, opening = self.rpc.take(call)
            except NoChannel:
                raise BrokerUnavailable("Too many calls in flight; retry later.", self.retry_after) from None
            data = wire.publish(
                channel.number, exchange, message.body, properties, self._frame_max, routing_key=routing_key
            )
            send = self._enqueue(opening + data if opening else data)
        if send:
            self._flush()
        if not call.lock.acquire(timeout=timeout):
            with self._lock:
                gave_up, closing = self.rpc.give_up(channel, call)
                send = gave_up and self._enqueue(closing)
            if send:
                self._flush()
            if gave_up:
                metrics.rpc_timed_out()
                raise RpcTimeout(f"No reply within {timeout:g} s.")
            call.lock.acquire()  # the reader took the call: its outcome is being set
        error = call.error
        if error is None:
            metrics.rpc_replied(time.monotonic() - call.started)
            return call.reply
        if isinstance(error, NoResponder):
            metrics.rpc_no_responder()
        elif isinstance(error, BrokerUnavailable):
            error.headers = [("Retry-After", str(self.retry_after))]
        raise error

    # -- what the reader does with each frame ------------------------------

    def _on_frame(self, frame, returning):
        """Handle one frame; returns the state of a Basic.Return being read (None between returns)."""
        if frame.channel_number > CHANNELS_NEEDED:
            self._on_rpc_frame(frame)
            return returning
        if returning is not None and frame.channel_number == returning[0].number:
            return self._on_return_content(frame, returning)
        method = getattr(frame, "method", None)
        if method is None:  # heartbeat (or content outside a return: ignored)
            return returning
        channel = self._by_number.get(frame.channel_number)
        if isinstance(method, spec.Basic.Ack):
            self._settle(channel, method, None)
        elif isinstance(method, spec.Basic.Nack):
            self._settle(channel, method, PublishNacked())
        elif isinstance(method, spec.Basic.Return):
            return (channel, method, None, [])
        elif isinstance(method, spec.Confirm.SelectOk):
            channel.opened.set()
        elif isinstance(method, spec.Channel.Close):
            self._on_channel_close(channel, method)
        elif isinstance(method, spec.Connection.Blocked):
            self._on_blocked(method)
        elif isinstance(method, spec.Connection.Unblocked):
            log.info("the broker unblocked publishing")
            self._blocked = False
            metrics.broker_blocked(DIRECT, False)
        elif isinstance(method, spec.Connection.Close):
            self._send(wire.method(0, spec.Connection.CloseOk()))
            raise ConnectionFailed(f"closed by the broker ({method.reply_code}) {method.reply_text}")
        return returning

    def _on_rpc_frame(self, frame):
        send = False
        with self._lock:
            sending, outcomes = self.rpc.on_frame(frame)
            if sending:
                send = self._enqueue(sending)
        resolve(outcomes)
        if send:
            self._flush()

    def _on_return_content(self, frame, returning):
        channel, method, header, body = returning
        if header is None:
            header = frame
            size = 0
        else:
            body.append(frame.fragment)
            size = sum(len(fragment) for fragment in body)
        if size < header.body_size:
            return (channel, method, header, body)
        with self._lock:
            channel.mark_returned(method.exchange, header.properties.message_id)
        return None

    def _settle(self, channel, method, error):
        with self._lock:
            items = channel.confirmed(method.delivery_tag, method.multiple)
        for item in items:
            item.resolve(None if error else not item.returned, error)

    def _on_channel_close(self, channel, method):
        if missing_exchange(method) is None:
            log.warning("publish channel closed by the broker: (%s) %s", method.reply_code, method.reply_text)
        with self._lock:
            outcomes = channel.closed(method)
        self._send(wire.method(channel.number, spec.Channel.CloseOk()))
        self._open_channel(channel)
        resolve(outcomes)

    def _on_blocked(self, method):
        log.warning("the broker blocked publishing (resource alarm): %s", method.reason)
        self._blocked = True
        metrics.broker_blocked(DIRECT, True)
        error = blocked(self.retry_after)
        send = False
        with self._lock:
            outcomes = [outcome for channel in self.channels.values() for outcome in channel.fail_all(error)]
            closing, failed = self.rpc.fail_in_flight(error)
            outcomes += failed
            if closing:
                send = self._enqueue(closing)
        resolve(outcomes)
        if send:
            self._flush()
