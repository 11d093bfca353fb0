"""One push subscription's consumer in one delivery process: POST each message, ack, retry or bury.

The process's share of ``concurrency`` (``hutch.delivery.main``) is the
channel's prefetch: at most that many messages of the subscription are
unacked (in flight) in this process.  A 2xx within
``timeout`` acks the message.  Anything else publishes a copy, confirmed,
to the retry queue of the schedule's next delay (or, after the last, to the
dead-letter queue) and only then acks the original: no message waits in
memory for its next attempt, and a crash anywhere leaves it in a queue.
"""

import asyncio
import contextlib
import logging
import re
import time

import aio_pika
import aiohttp

from hutch.delivery import signing, targets, topology
from hutch.delivery.store import RETIRED, iso
from hutch.errors import TargetRefused

log = logging.getLogger(__name__)

HEADER_TOKEN_JUNK = re.compile(r"[^A-Za-z0-9-]")
MAX_ERROR = 200  # characters of an error kept in last_failure and on a dead letter
UNSEALED = "the secret does not open with this host's key (push_key_file or the session secret differs)"
KEYS_TTL = 60  # seconds opened secrets are kept
READ_LIMIT = 64 * 1024  # bytes of a receiver's answer read (then dropped) so the connection is reused


class Outcome:
    """One attempt's result: ``status`` (an HTTP answer) or ``error`` (refused, timeout, ...)."""

    __slots__ = ("body", "error", "headers", "seconds", "status")

    def __init__(self, status=None, error=None, body=b"", headers=None, seconds=0.0):
        self.status, self.error, self.body, self.headers, self.seconds = (
            status,
            error,
            body,
            headers or {},
            seconds,
        )

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    @property
    def label(self):
        """For metrics: ``2xx``, ``4xx``, ``5xx``, ``timeout`` or ``error``."""
        if self.status is not None:
            return f"{self.status // 100}xx"
        return "timeout" if self.error == "timeout" else "error"

    def failure(self):
        failure = {"at": iso(time.time())}
        if self.status is not None:
            failure["status"] = self.status
        else:
            failure["error"] = self.error
        return failure


def header_text(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    return "".join(ch for ch in text if ch.isprintable() and ch.isascii())[:4096]


def request_headers(message, exchange, attempt, keys, extra=()):
    """The headers of one POST: content type, Standard Webhooks, X-Hutch-*, X-Amqp-Header-*."""
    message_id = message.message_id or f"amqp-{message.delivery_tag}"
    timestamp = int(time.time())
    headers = {
        "Content-Type": message.content_type or "application/octet-stream",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(keys, message_id, timestamp, message.body),
        "X-Hutch-Exchange": exchange,
        "X-Hutch-Attempt": str(attempt),
    }
    if message.content_encoding:
        headers["Content-Encoding"] = header_text(message.content_encoding)
    if message.correlation_id:
        headers["X-Correlation-Id"] = header_text(message.correlation_id)
    for name, value in topology.user_headers(message.headers).items():
        token = HEADER_TOKEN_JUNK.sub("", str(name))
        if token:
            headers[f"X-Amqp-Header-{token}"] = header_text(value)
    headers.update(extra)
    return headers


async def post(tier, url, body, headers, timeout, keep_body=False):
    """POST once; an ``Outcome``, never an exception (a refused target is an outcome too)."""
    started = time.monotonic()
    try:
        _host, trusted = tier.policy.check_url(url)  # literal addresses skip the resolver: checked here
        targets.TRUSTED.set(trusted)  # for the resolver, in this task
        async with tier.http.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            answer = await response.content.read(READ_LIMIT if not keep_body else tier.max_answer + 1)
            if keep_body and len(answer) > tier.max_answer:
                return Outcome(error=f"the answer is larger than {tier.max_answer} bytes (max_body_bytes)")
            return Outcome(
                status=response.status,
                body=answer if keep_body else b"",
                headers=response.headers if keep_body else None,
                seconds=time.monotonic() - started,
            )
    except TargetRefused as error:
        return Outcome(error=f"refused: {error.detail}", seconds=time.monotonic() - started)
    except TimeoutError:
        return Outcome(error="timeout", seconds=time.monotonic() - started)
    except Exception as error:  # refused, reset, bad URL ...: a failed attempt, whatever aiohttp raises
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR]
        return Outcome(error=text, seconds=time.monotonic() - started)


class QueueConsumer:
    """Consumes one subscription's queue on a channel of its own, a task per message."""

    def __init__(self, tier, subscription, prefetch):
        self.tier = tier
        self.subscription = subscription
        self.prefetch = prefetch  # this process's share of the subscription's concurrency
        self.channel = None
        self.queue = None
        self.tag = None
        self.tasks = set()
        self._keys, self._keys_for, self._keys_minute = [], None, None

    @property
    def alive(self):
        return self.channel is not None and not self.channel.is_closed

    def signing_keys(self):
        """The subscription's keys, opened once per change of it (and per minute: a rotation's
        previous secret stops signing on time)."""
        minute = int(time.time() // KEYS_TTL)
        if self._keys_for is not self.subscription or self._keys_minute != minute:
            self._keys = self.subscription.signing_keys(self.tier.sealer)
            self._keys_for, self._keys_minute = self.subscription, minute
        return self._keys

    async def on_message(self, message):
        task = asyncio.create_task(self.handle(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, message):
        raise NotImplementedError

    async def consume(self, queue, doing):
        """Take this process's share of the queue's messages, a task each (``on_message``); log
        ``doing`` (``%s`` stands for the subscription)."""
        await self.channel.set_qos(prefetch_count=self.prefetch)
        self.queue = queue
        self.tag = await queue.consume(self.on_message, no_ack=False)
        share = f"{self.prefetch} of concurrency {self.subscription.concurrency}"
        log.info(doing + " (%s)", self.subscription.key, share)

    async def stop(self, grace):
        """Stop taking messages; let those in flight finish (``grace`` s), then close the channel."""
        if self.queue is not None and self.tag is not None and self.alive:
            with contextlib.suppress(Exception):
                await self.queue.cancel(self.tag)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        if self.channel is not None and not self.channel.is_closed:
            with contextlib.suppress(Exception):
                await self.channel.close()


class PushConsumer(QueueConsumer):
    """A push subscription: POST, then ack, retry or bury."""

    def shape(self):
        """What needs a new consumer when it changes (the rest is read per message)."""
        return (self.subscription.concurrency, self.subscription.retry_schedule)

    async def declare(self, delay):
        """The retry queue of ``delay``, or the dead-letter queue (``None``); its name."""
        work = self.subscription.queue
        if delay is None:
            name, arguments = topology.dead_queue(work), topology.DEAD_ARGUMENTS
        else:
            queue_type = self.tier.settings.notify_queue_type
            name = topology.retry_queue(work, delay)
            arguments = topology.retry_arguments(work, delay, queue_type)
        await self.channel.declare_queue(name, durable=True, arguments=arguments)
        return name

    async def start(self, connection):
        subscription = self.subscription
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self.channel = channel
        for delay in sorted(set(subscription.retry_schedule)):
            await self.declare(delay)
        await self.declare(None)
        queue = await channel.declare_queue(subscription.queue, passive=True)
        await self.consume(queue, "pushing %s to its URL")

    async def handle(self, message):
        subscription = self.subscription
        tier = self.tier
        attempt = attempt_of(message.headers)
        tier.stats.started(subscription)
        try:
            keys = self.signing_keys()
            if keys:
                headers = request_headers(message, subscription.exchange, attempt, keys)
                outcome = await post(tier, subscription.url, message.body, headers, subscription.timeout)
            else:  # never POST unsigned: this host's sealing key is not the one that sealed the secret
                log.error(
                    "%s: its secret does not open with this host's key (push_key_file)", subscription.key
                )
                outcome = Outcome(error=UNSEALED)
        finally:
            tier.stats.finished(subscription)
        try:
            if outcome.ok:
                await message.ack()
                tier.stats.record(subscription, outcome)
                return
            tier.stats.record(subscription, outcome)
            schedule = subscription.retry_schedule
            delay = schedule[attempt - 1] if attempt <= len(schedule) else None
            if delay is not None:
                target = topology.retry_queue(subscription.queue, delay)
                extra = {topology.ATTEMPT: attempt + 1}
            else:
                target = topology.dead_queue(subscription.queue)
                extra = {topology.ATTEMPTS: attempt, topology.DEAD_AT: iso(time.time())}
                extra[topology.LAST_STATUS if outcome.status is not None else topology.LAST_ERROR] = (
                    outcome.status if outcome.status is not None else outcome.error
                )
            stored = copy_of(message, extra)
            try:
                await self.channel.default_exchange.publish(stored, routing_key=target, mandatory=True)
            except aio_pika.exceptions.PublishError:  # returned: the queue was retired and deleted meanwhile
                await self.declare(delay)
                if delay is not None:  # deleted again once empty, unless a schedule uses it
                    await tier.redis.sadd(RETIRED, target)
                await self.channel.default_exchange.publish(stored, routing_key=target, mandatory=True)
            await message.ack()
            if target.endswith(".dead"):
                tier.stats.dead(subscription)
        except Exception as error:  # the channel or connection went away: the broker redelivers it
            log.warning("%s: could not settle message %s: %s", subscription.key, message.message_id, error)


def attempt_of(headers):
    try:
        return max(1, int((headers or {}).get(topology.ATTEMPT, 1)))
    except (TypeError, ValueError):
        return 1


def copy_of(message, extra):
    """The message as stored, with the tier's headers replaced by ``extra``."""
    headers = topology.user_headers(message.headers)
    headers.update(extra)
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
