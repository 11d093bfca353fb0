"""Fixtures for the failover tests: a private 3-node RabbitMQ cluster and gateways on it.

The cluster is started once for the session (it takes half a minute) and
torn down afterwards; each test gets a fresh gateway (``hutch serve``,
2 processes x 10 threads as in production) whose ``amqp_url`` lists the
three nodes.  A test that kills or freezes a node brings it back before it
ends, so the next one starts on a whole cluster.
"""

import os
import pathlib

import pytest

from harness.cluster import Cluster
from harness.private_broker import BrokerStartError
from harness.server import gateway_ini, running_gateway

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def cluster(request):
    """Three private RabbitMQ nodes joined into one cluster."""
    cluster = Cluster(size=3)
    try:
        cluster.start()
    except BrokerStartError:
        cluster.cleanup()
        raise
    failures = request.session.testsfailed
    try:
        yield cluster
    finally:
        cluster.stop()
        if request.session.testsfailed > failures or os.environ.get("HUTCH_CLUSTER_LOGS"):
            print(f"\n=== cluster logs\n{cluster.logs()[-20000:]}")
        cluster.cleanup()


@pytest.fixture
def gateway(request, cluster):
    """A gateway on the cluster; its log is printed when the test failed.

    2 processes x 10 threads, as in production; a test parametrizes it
    indirectly with ``(processes, threads)`` for another shape.
    """
    processes, threads = getattr(request, "param", (2, 10))
    cluster.wait_until_formed()
    ini = gateway_ini(HERE / "cluster.ini", cluster.amqp_urls)
    always = bool(os.environ.get("HUTCH_CLUSTER_LOGS"))
    options = {"processes": processes, "threads": threads}
    with running_gateway(request, ini, log_tail=10000, always_log=always, **options) as server:
        yield server
