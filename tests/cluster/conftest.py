"""Fixtures for the failover tests: a private 3-node RabbitMQ cluster and gateways on it.

The cluster is started once for the session (it takes half a minute) and
torn down afterwards; each test gets a fresh gateway (``hutch serve``,
2 processes x 10 threads as in production) whose ``amqp_url`` lists the
three nodes.  A test that kills or freezes a node brings it back before it
ends, so the next one starts on a whole cluster.
"""

import os
import pathlib
import re
import shutil
import tempfile

import pytest

from tests.support.cluster import Cluster
from tests.support.private_broker import BrokerStartError
from tests.support.server import GatewayServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def write_ini(amqp_urls):
    """``cluster.ini`` with absolute paths and the nodes' URLs, in a directory www-data can read."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-cluster-ini-"))
    os.chmod(directory, 0o755)
    text = (HERE / "cluster.ini").read_text().replace("%(here)s/../..", str(ROOT))
    line = "amqp_url = " + " ".join(url.replace("%", "%%") for url in amqp_urls)
    text = re.sub(r"^amqp_url = .*$", lambda _match: line, text, count=1, flags=re.MULTILINE)
    path = directory / "gateway.ini"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


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
    ini = write_ini(cluster.amqp_urls)
    server = GatewayServer(ini, processes=processes, threads=threads)
    failures = request.session.testsfailed
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failures or os.environ.get("HUTCH_CLUSTER_LOGS"):
            print(f"\n=== gateway log ({server.url})\n{server.logs()[-10000:]}")
        server.cleanup()
        shutil.rmtree(ini.parent, ignore_errors=True)
