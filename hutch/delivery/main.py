"""``hutch delivery``: one delivery process for an ini (``hutch serve`` starts them itself).

Any number of them, on any number of hosts, share the work as competing
consumers of the subscriptions' queues, so a process or a host that dies
leaves its unacked messages to the others.  Each reads the subscriptions
from the store every ``store.POLL`` second(s) and starts, changes or stops
its consumers to match.

``concurrency`` holds for the whole tier: the live processes (those that
said so in the store within ``store.LIVE`` s) split it among themselves, in
an order that differs per subscription, and each uses its share as its
prefetch; a process whose share is 0 does not consume that subscription
(so with ``concurrency`` 1 a single process delivers, in order).  When a
process joins or leaves, the shares move within a few seconds; meanwhile
the tier may briefly have more in flight than ``concurrency``.  Retry queues
a schedule no longer uses (``store.RETIRED``) are deleted once empty, when
the store changes and every ``RETIRE_EVERY`` polls: a message waiting in one
goes back to its work queue first, as it would have.  SIGTERM or SIGINT stops taking
messages, lets those in flight finish (at most ``STOP_GRACE`` s), and exits.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
import zlib

import aio_pika
import aiohttp
import redis
import redis.asyncio
import yarl

from hutch.delivery import topology
from hutch.delivery.responders import ResponderConsumer
from hutch.delivery.signing import sealer_for
from hutch.delivery.stats import FLUSH, TierStats
from hutch.delivery.store import (
    CONSUMING,
    LIVE,
    POLL,
    PROCESSES,
    RETIRED,
    SUBSCRIPTIONS,
    VERSION,
    Subscription,
)
from hutch.delivery.targets import CheckedResolver, TargetPolicy
from hutch.delivery.worker import PushConsumer
from hutch.inifile import IniError, configure_logging, find_ini, load_settings
from hutch.settings import ConfigurationError

log = logging.getLogger(__name__)

STOP_GRACE = 15.0
MIN_DELAY = 0.5
RETIRE_EVERY = 10  # polls between tries at deleting retired retry queues that still held messages


def safe(url):
    return str(yarl.URL(url).with_password(None))


class DeliveryTier:
    """This process's consumers, kept in step with the store, over one broker connection."""

    def __init__(self, settings):
        if not settings.push_store:
            raise ConfigurationError("push delivery needs push_store (a redis:// URL)")
        self.settings = settings
        self.policy = TargetPolicy(settings.push_allow)
        self.sealer = sealer_for(settings)
        self.redis = redis.asyncio.Redis.from_url(
            settings.push_store, socket_timeout=5, socket_connect_timeout=5, decode_responses=True
        )
        self.stats = TierStats(self.redis)
        self.max_answer = settings.max_body_bytes
        self.urls = list(settings.amqp_url)
        random.shuffle(self.urls)
        self.subscriptions = {}  # key -> Subscription, as last read
        self.consumers = {}  # key -> running consumer
        self.connection = None
        self.version = None
        self.stopping = asyncio.Event()
        self.http = None
        self.id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.peers = [self.id]  # the live delivery processes, sorted
        self.lock = asyncio.Lock()  # one reconciliation at a time (the watcher's, or a new connection's)

    def consumer_for(self, subscription, share):
        if subscription.kind == "push":
            return PushConsumer(self, subscription, share)
        return ResponderConsumer(self, subscription, share)

    def share(self, subscription):
        """This process's part of the subscription's ``concurrency`` (0: it does not consume it)."""
        count = len(self.peers)
        rank = self.peers.index(self.id) if self.id in self.peers else 0
        position = (rank - zlib.crc32(subscription.key.encode())) % count
        return subscription.concurrency // count + (1 if position < subscription.concurrency % count else 0)

    async def announce(self):
        """Say this process is alive (only while connected), and read who else is."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            if self.connection is not None and not self.connection.is_closed:
                pipe.zadd(PROCESSES, {self.id: now})
                consuming = sorted(key for key, consumer in self.consumers.items() if consumer.alive)
                pipe.set(CONSUMING + self.id, json.dumps(consuming), ex=int(LIVE) + 1)
            else:
                pipe.zrem(PROCESSES, self.id)
                pipe.delete(CONSUMING + self.id)
            pipe.zremrangebyscore(PROCESSES, 0, now - LIVE)
            pipe.zrange(PROCESSES, 0, -1)
            *_, peers = await pipe.execute()
        self.peers = sorted(peers) or [self.id]

    async def run(self):
        connector = aiohttp.TCPConnector(resolver=CheckedResolver(self.policy), limit=0, use_dns_cache=False)
        self.http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        tasks = [
            asyncio.create_task(self.watch(), name="watch-store"),
            asyncio.create_task(self.flush(), name="flush-stats"),
            asyncio.create_task(self.connect(), name="broker"),
        ]
        await self.stopping.wait()
        with contextlib.suppress(redis.RedisError):
            await self.redis.delete(CONSUMING + self.id)
            await self.redis.zrem(PROCESSES, self.id)  # the others take over its shares at their next poll
        await self.stop_consumers(set(self.consumers))
        await self.stats.flush()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
        await self.http.close()
        await self.redis.aclose()

    async def watch(self):
        """Read the store when its version moves (and at least every 30 polls, in case a bump was missed)."""
        polls = 0
        while True:
            try:
                version = await self.redis.get(VERSION)
                changed = version != self.version
                if changed or polls % 30 == 0:
                    texts = await self.redis.hgetall(SUBSCRIPTIONS)
                    self.subscriptions = {
                        key: subscription
                        for key, subscription in (
                            (key, Subscription.from_json(text)) for key, text in texts.items()
                        )
                    }
                    self.version = version
                await self.announce()
                await self.reconcile()
                if changed or polls % RETIRE_EVERY == 0:
                    await self.retire()
            except redis.RedisError as error:
                log.warning("cannot read the subscription store: %s", error)
            except Exception:
                log.exception("keeping the consumers in step with the store failed")
            polls += 1
            await asyncio.sleep(POLL)

    async def reconcile(self):
        """Start, restart or stop consumers so this process consumes exactly what the store says."""
        async with self.lock:
            await self._reconcile()

    async def _reconcile(self):
        if self.connection is None or self.connection.is_closed:
            return
        shares = {key: self.share(subscription) for key, subscription in self.subscriptions.items()}
        gone = {key for key in self.consumers if not shares.get(key)}
        for key, subscription in self.subscriptions.items():
            consumer = self.consumers.get(key)
            if consumer is None or key in gone:
                continue
            if not consumer.alive:
                gone.add(key)
                continue
            old_shape = consumer.shape()
            consumer.subscription = subscription  # url, timeout, secrets: read per message
            if consumer.shape() != old_shape or consumer.prefetch != shares[key]:
                gone.add(key)
        await self.stop_consumers(gone)
        for key, subscription in self.subscriptions.items():
            if key not in self.consumers and shares[key]:
                consumer = self.consumer_for(subscription, shares[key])
                try:
                    await consumer.start(self.connection)
                except Exception as error:  # e.g. its queue is missing: try again at the next poll
                    log.warning("cannot consume for %s: %s", key, error)
                    await consumer.stop(0)
                    continue
                self.consumers[key] = consumer

    async def retire(self):
        """Delete the retired retry queues that are empty; the others hold messages on their way back
        to the work queue, and are tried again later."""
        names = await self.redis.smembers(RETIRED)
        connection = self.connection
        if not names or connection is None or connection.is_closed:
            return
        in_use = {
            topology.retry_queue(subscription.queue, delay)
            for subscription in self.subscriptions.values()
            if subscription.kind == "push"
            for delay in subscription.retry_schedule
        }
        for name in sorted(names - in_use):  # a PUT taking a delay back removes it from the set too
            channel = await connection.channel()
            try:
                await channel.queue_delete(name, if_empty=True)  # a missing queue is deleted too
            except aio_pika.exceptions.ChannelPreconditionFailed:  # not empty: its messages drain first
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
            await self.redis.srem(RETIRED, name)
            log.info("deleted the retired retry queue %s", name)

    async def stop_consumers(self, keys):
        consumers = [self.consumers.pop(key) for key in keys if key in self.consumers]
        if consumers:
            await asyncio.gather(*(consumer.stop(STOP_GRACE) for consumer in consumers))

    async def flush(self):
        while True:
            await asyncio.sleep(FLUSH)
            await self.stats.flush()

    async def connect(self):
        delay, attempt = MIN_DELAY, 0
        while True:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                connection = await aio_pika.connect(
                    url,
                    timeout=self.settings.connect_timeout,
                    heartbeat=self.settings.heartbeat,
                    client_properties={"connection_name": f"hutch delivery pid {os.getpid()}"},
                )
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
                log.warning("cannot connect to %s: %s", safe(url), error)
                await asyncio.sleep(delay * random.uniform(0.75, 1.25))  # noqa: S311 - jitter
                delay = min(delay * 2, self.settings.reconnect_max_delay)
                continue
            delay = MIN_DELAY
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_args, lost=lost: lost.set())
            self.connection = connection
            log.info("delivery process connected to %s", safe(url))
            await self.reconcile()
            await lost.wait()
            self.connection = None
            log.warning("delivery process lost its connection to %s", safe(url))
            async with self.lock:
                await self.stop_consumers(set(self.consumers))  # their channels are gone: start again

    def stop(self):
        self.stopping.set()


def parse(argv):
    parser = argparse.ArgumentParser(prog="hutch delivery", description=__doc__.splitlines()[0])
    parser.add_argument("--ini", default=None, help="default: $HUTCH_INI, else production.ini")
    return parser.parse_args(argv)


async def serve(settings):
    tier = DeliveryTier(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, tier.stop)
    await tier.run()


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    ini = find_ini(args.ini)
    try:
        settings = load_settings(ini)
        if not settings.push_store:
            raise ConfigurationError("push delivery needs push_store (a redis:// URL)")
    except (ConfigurationError, OSError, IniError) as error:
        sys.exit(f"hutch delivery: {ini}: {error}")
    configure_logging(ini)
    log.info("delivery process pid %d", os.getpid())
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
