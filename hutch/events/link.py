"""The event server's one AMQP connection, to one node of the cluster, reconnected when it fails.

``amqp_url`` may name several nodes (whitespace-separated); each process
shuffles them, so the processes of a host spread over the cluster, and moves
to the next one when its node fails.  Feeds register as listeners: they are
told when a connection is up (to consume again where they stopped) and when
it is lost.
"""

import asyncio
import contextlib
import logging
import os
import random

import aio_pika
import yarl

from hutch.amqp.connection import quiet_client_loggers

log = logging.getLogger(__name__)

MIN_DELAY = 0.5


def safe(url):
    """The URL without its password, for the log."""
    return str(yarl.URL(url).with_password(None))


class BrokerLink:
    def __init__(self, urls, heartbeat, connect_timeout, reconnect_max_delay):
        self.urls = list(urls)
        random.shuffle(self.urls)
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.connection = None
        self.up = asyncio.Event()
        self.listeners = set()
        self.stopping = False
        self.task = None
        quiet_client_loggers()  # aiormq's ERROR lines and tracebacks for an expected disconnect

    def start(self):
        self.task = asyncio.create_task(self.run(), name="broker-link")

    async def run(self):
        delay, attempt = MIN_DELAY, 0
        while not self.stopping:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                connection = await aio_pika.connect(
                    url,
                    timeout=self.connect_timeout,
                    heartbeat=self.heartbeat,
                    client_properties={"connection_name": f"hutch events pid {os.getpid()}"},
                )
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
                pause = delay * random.uniform(0.75, 1.25)  # noqa: S311 - jitter
                log.warning("event server cannot connect to %s: %s; again in %.1f s", safe(url), error, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            delay = MIN_DELAY
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_args, lost=lost: lost.set())
            self.connection = connection
            self.up.set()
            log.info("event server connected to %s", safe(url))
            for listener in list(self.listeners):
                listener.on_connected()
            await lost.wait()
            self.up.clear()
            self.connection = None
            if not self.stopping:
                log.warning("event server lost its connection to %s", safe(url))
            for listener in list(self.listeners):
                listener.on_lost()

    async def channel(self):
        connection = self.connection
        if connection is None:
            raise ConnectionError("not connected to the broker")
        return await connection.channel()

    async def close(self):
        self.stopping = True
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
