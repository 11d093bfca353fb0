"""Two gateway hosts (two ``hutch serve``, each with its event server) sharing the broker and Redis,
behind HAProxy.

The fixture is built once per test session, for reuse (a test that stops a host starts it again): ``hosts.a``
and ``hosts.b`` are the ``GatewayServer``s, ``hosts.balancer`` the
``LoadBalancer`` in front of them, ``hosts.url`` the gateway through HAProxy.
"""

import concurrent.futures
import dataclasses
import pathlib
import uuid

import pytest

from harness.amqp import delete
from harness.haproxy import LoadBalancer
from harness.server import GatewayServer
from hutch.amqp.history import HistoryPolicy
from tests.dashboard.test_browser import browser  # noqa: F401 - headless Chromium, as the dashboard tests drive it

HERE = pathlib.Path(__file__).resolve().parent
INI = HERE / "hosts.ini"
PREFIX = "/gateway"
ADMIN_KEY = "hosts-admin-key-0123456789abcdef"
WATCHER_KEY = "hosts-watcher-key-0123456789abcd"
STREAM_LIFETIME = 300  # events_max_lifetime of hosts.ini (the default)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@dataclasses.dataclass
class Hosts:
    a: GatewayServer
    b: GatewayServer
    balancer: LoadBalancer

    @property
    def url(self):
        return self.balancer.origin + PREFIX

    def by_name(self, name):
        return {"a": self.a, "b": self.b}[name]


@pytest.fixture(scope="session")
def hosts():
    servers = [
        GatewayServer(INI, prefix=PREFIX, processes=2, threads=10, extra_args=["--events-processes", "1"])
        for _ in range(2)
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        started = [pool.submit(server.start, 90) for server in servers]
    errors = [future.exception() for future in started if future.exception() is not None]
    if errors:
        for server in servers:
            server.stop()
            server.cleanup()
        raise errors[0]
    a, b = servers
    balancer = LoadBalancer({"a": a.port, "b": b.port}, f"{PREFIX}/health", STREAM_LIFETIME)
    try:
        balancer.start()
        balancer.wait_until_serving(["a", "b"])
    except Exception:
        balancer.cleanup()
        for server in servers:
            server.stop()
            server.cleanup()
        raise
    yield Hosts(a, b, balancer)
    balancer.cleanup()
    for server in servers:
        server.stop()
        server.cleanup()


@pytest.fixture
def history_exchange():
    """A fresh exchange that keeps history (hosts.ini: ``events_history = t.hosts.h.*``); deleted after."""
    name = f"t.hosts.h.{uuid.uuid4().hex[:8]}"
    yield name
    delete(exchanges=[name], queues=[HistoryPolicy.queue(name)])
