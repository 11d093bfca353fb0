"""The event server's broker link over several nodes (``amqp_url`` with whitespace-separated URLs):
it connects to one, moves on when that one refuses, and moves to another when its node goes away.

The node that goes away is the private one (``harness.private_broker``); the shared node only
takes a connection.
"""

import asyncio
import socket

import pytest

from harness.amqp import AMQP_URL as SHARED_URL
from hutch.events.link import BrokerLink

pytestmark = [pytest.mark.broker]

WAIT = 30.0


class Recorder:
    """A listener as the feeds are: told when the link is up and when it is lost."""

    def __init__(self):
        self.events = []

    def on_connected(self):
        self.events.append("connected")

    def on_lost(self):
        self.events.append("lost")


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_of(link):
    return link.connection.transport.connection.url.port


def test_a_refusing_node_is_skipped():
    async def scenario():
        dead = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        link = BrokerLink([dead, SHARED_URL], heartbeat=5, connect_timeout=2, reconnect_max_delay=1)
        link.urls = [dead, SHARED_URL]  # the dead one first, whatever the shuffle chose
        link.start()
        try:
            await asyncio.wait_for(link.up.wait(), WAIT)
            return port_of(link)
        finally:
            await link.close()

    assert asyncio.run(scenario()) == 5672


def test_the_link_moves_to_another_node_when_its_node_goes_away(private_broker):
    async def scenario():
        link = BrokerLink(
            [private_broker.amqp_url, SHARED_URL], heartbeat=5, connect_timeout=2, reconnect_max_delay=1
        )
        link.urls = [private_broker.amqp_url, SHARED_URL]
        recorder = Recorder()
        link.listeners.add(recorder)
        link.start()
        try:
            await asyncio.wait_for(link.up.wait(), WAIT)
            first = port_of(link)
            with private_broker.app_stopped():
                deadline = asyncio.get_running_loop().time() + WAIT
                while not (
                    link.up.is_set() and recorder.events[-1:] == ["connected"] and "lost" in recorder.events
                ):
                    assert asyncio.get_running_loop().time() < deadline, recorder.events
                    await asyncio.sleep(0.1)
                second = port_of(link)
            return first, second, list(recorder.events)
        finally:
            await link.close()

    first, second, events = asyncio.run(scenario())
    assert (first, second) == (private_broker.port, 5672)
    assert events == ["connected", "lost", "connected"]
