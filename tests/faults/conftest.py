"""Fixtures for the fault tests: a private broker, gateways, names, AMQP helpers.

The broker faults (restart, killed connections, memory alarm) run against a
private RabbitMQ node started for this session (``tests.support.private_broker``),
never against the shared node on port 5672.  The responder faults do not
disturb a broker, so they use the shared node.
"""

import contextlib
import os
import pathlib
import re
import shutil
import tempfile
import uuid

import pytest

from tests.support.private_broker import BrokerStartError, PrivateBroker
from tests.support.server import GatewayServer

from .amqp_tools import SHARED_AMQP_URL, delete_exchange_and_queues

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def write_ini(amqp_url, settings=None):
    """``faults.ini`` with absolute paths, ``amqp_url`` and more ``settings``, where www-data can read."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-faults-ini-"))
    os.chmod(directory, 0o755)
    text = (HERE / "faults.ini").read_text().replace("%(here)s/../..", str(ROOT))
    line = f"amqp_url = {amqp_url.replace('%', '%%')}"
    line += "".join(f"\n{key} = {value}" for key, value in (settings or {}).items())
    text = re.sub(r"^amqp_url = .*$", line, text, count=1, flags=re.MULTILINE)
    path = directory / "gateway.ini"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


@contextlib.contextmanager
def running_gateway(request, amqp_url, processes, settings=None):
    """A gateway on ``amqp_url``; its log is printed when a test using it failed."""
    ini = write_ini(amqp_url, settings)
    server = GatewayServer(ini, processes=processes, threads=10)
    failures = request.session.testsfailed
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failures or os.environ.get("HUTCH_FAULTS_LOGS"):
            print(f"\n=== gateway log ({server.url})\n{server.logs()[-8000:]}")
        server.cleanup()
        shutil.rmtree(ini.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def private_broker():
    """A RabbitMQ node of our own, which the tests may stop, block and cut."""
    for attempt in (1, 2):  # a port picked as free may be taken before the node binds it
        broker = PrivateBroker()
        try:
            broker.start()
            break
        except BrokerStartError:
            broker.cleanup()
            if attempt == 2:
                raise
    try:
        yield broker
    finally:
        broker.stop()
        broker.cleanup()


@pytest.fixture
def private_gateway(request, private_broker):
    """The gateway (2 processes x 10 threads, as in production) on the private node."""
    with running_gateway(request, private_broker.amqp_url, processes=2) as server:
        yield server


@pytest.fixture(scope="module")
def shared_gateway(request):
    """One gateway process on the shared node: consecutive calls reuse its RPC channels."""
    with running_gateway(request, SHARED_AMQP_URL, processes=1) as server:
        yield server


@pytest.fixture
def names():
    """Unique exchange names, deleted (with the queues named after them) on the given broker afterwards."""
    created = []

    def make(prefix, amqp_url=SHARED_AMQP_URL):
        name = f"t.{prefix}.{uuid.uuid4().hex[:8]}"
        created.append((amqp_url, name))
        return name

    yield make
    for amqp_url, name in created:
        delete_exchange_and_queues(amqp_url, name)
