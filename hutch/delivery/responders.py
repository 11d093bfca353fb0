"""HTTP responders: RPC requests POSTed to a URL, the HTTP answer sent back as the AMQP reply.

The delivery processes bind a queue of their own, ``{exchange}.{routing_key}.http``
(auto-delete: when no delivery process consumes it, it goes, and callers get
503 ``no_responder`` at once instead of waiting), to the RPC exchange (a
direct exchange, declared as AMQP responders declare it).  Each request is
one POST with ``X-Timeout``: the milliseconds left before the caller gives
up (the request's ``expiration``, less the whole seconds it surely waited
since its ``timestamp``, which counts seconds; ``rpc_max_timeout`` for a
request without an expiration).  The answer's
status becomes the reply's ``http_status`` header, its body and
``Content-Type`` the reply's; a responder that cannot be reached or errs is
answered 502, one that exceeds the time left 504, with a JSON error body.

A request is never sent twice: it is acked once answered (so ``concurrency``
bounds the requests in flight), and one the broker redelivers (its process
died mid-call) is answered 502 without calling the URL again.
"""

import json
import logging
import time

import aio_pika

from hutch.delivery import topology
from hutch.delivery.worker import HEADER_TOKEN_JUNK, Outcome, QueueConsumer, post, request_headers

log = logging.getLogger(__name__)

RPC_EXCHANGE = {"type": aio_pika.ExchangeType.DIRECT, "durable": False, "auto_delete": True}
ANSWER_HEADER = "X-Amqp-Header-"
MIN_LEFT = 0.001  # seconds: below this the caller has given up


def time_left(message, default, now=None):
    """Seconds before the caller gives up, from the request's expiration and timestamp."""
    now = time.time() if now is None else now
    left = default if message.expiration is None else float(message.expiration)  # aio-pika: seconds
    if message.timestamp is not None:
        sent = message.timestamp.timestamp() if hasattr(message.timestamp, "timestamp") else message.timestamp
        # A timestamp has a resolution of one second: only a wait longer than that is surely a wait.
        left -= max(0, int(now) - int(sent) - 1)
    return left


def error_body(code, detail):
    return json.dumps({"error": code, "detail": detail}).encode()


class ResponderConsumer(QueueConsumer):
    """An HTTP responder: POST each request, publish the answer to its ``reply_to``."""

    def shape(self):
        return (self.subscription.concurrency,)

    async def start(self, connection):
        subscription = self.subscription
        channel = await connection.channel(publisher_confirms=False)
        self.channel = channel
        exchange = await channel.declare_exchange(subscription.exchange, **RPC_EXCHANGE)
        queue = await channel.declare_queue(subscription.queue, durable=False, auto_delete=True)
        await queue.bind(exchange, routing_key=subscription.name)
        await self.consume(queue, "answering %s from its URL")

    async def handle(self, message):
        subscription = self.subscription
        tier = self.tier
        try:
            if not message.reply_to:  # nobody to answer: nothing to do
                await message.ack()
                return
            if message.redelivered:
                await self.reply(
                    message, 502, "application/json", error_body("bad_gateway", "The call was interrupted.")
                )
                await message.ack()
                return
            left = time_left(message, tier.settings.rpc_max_timeout)
            if left < MIN_LEFT:
                await message.ack()  # the caller has given up already
                return
            outcome = await self.call(message, left)
            tier.stats.record(subscription, outcome)
            if outcome.status is not None:
                await self.reply(message, outcome.status, outcome.content_type, outcome.body, outcome.headers)
            elif outcome.error == "timeout":
                detail = f"The HTTP responder did not answer within {left:.3f} s."
                await self.reply(message, 504, "application/json", error_body("timeout", detail))
            else:
                detail = f"The HTTP responder failed: {outcome.error}"
                await self.reply(message, 502, "application/json", error_body("bad_gateway", detail))
            await message.ack()
        except Exception as error:  # the channel went away: the broker redelivers it, answered 502 then
            log.warning(
                "%s: could not answer request %s: %s", subscription.key, message.correlation_id, error
            )

    async def call(self, message, left):
        subscription = self.subscription
        tier = self.tier
        keys = self.signing_keys()
        if not keys:
            log.error("%s: its secret does not open with this host's key (push_key_file)", subscription.key)
            return Outcome(error="the secret does not open with this host's key")
        extra = {"X-Timeout": str(max(1, int(left * 1000)))}
        headers = request_headers(message, subscription.exchange, 1, keys, extra)
        headers.pop("X-Hutch-Attempt", None)
        tier.stats.started(subscription)
        try:
            return await post(tier, subscription.url, message.body, headers, left, keep_body=True)
        finally:
            tier.stats.finished(subscription)

    async def reply(self, request, status, content_type, body, answer_headers=None):
        headers = {"http_status": status}
        for name, value in (answer_headers or {}).items():
            if name.lower().startswith(ANSWER_HEADER.lower()):
                token = HEADER_TOKEN_JUNK.sub("", name[len(ANSWER_HEADER) :]).lower()
                if token and not token.startswith(topology.INTERNAL_PREFIXES):
                    headers[token] = value
        reply = aio_pika.Message(
            body,
            content_type=content_type or "application/octet-stream",
            correlation_id=request.correlation_id,
            headers=headers,
        )
        # Not mandatory: a caller that gave up is gone, and its reply with it.
        await self.channel.default_exchange.publish(reply, routing_key=request.reply_to, mandatory=False)
