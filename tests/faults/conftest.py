"""Fixtures for the fault tests: a private broker, gateways, names, AMQP helpers.

The broker faults (restart, killed connections, memory alarm) run against a
private RabbitMQ node started for this session (``harness.private_broker``),
never against the shared node on port 5672.  The responder faults do not
disturb a broker, so they use the shared node.
"""

import contextlib
import os
import pathlib
import uuid

import pytest

from harness.private_broker import started_private_broker
from harness.server import gateway_ini
from harness.server import running_gateway as support_running_gateway

from .amqp_tools import SHARED_AMQP_URL, delete_exchange_and_queues

HERE = pathlib.Path(__file__).resolve().parent


def write_ini(amqp_url, settings=None):
    """``faults.ini`` with ``amqp_url`` and more ``settings``, where www-data can read."""
    return gateway_ini(HERE / "faults.ini", amqp_url, settings)


@contextlib.contextmanager
def running_gateway(request, amqp_url, processes, settings=None):
    """A gateway on ``amqp_url``; its log is printed when a test using it failed."""
    ini = write_ini(amqp_url, settings)
    always = bool(os.environ.get("HUTCH_FAULTS_LOGS"))
    with support_running_gateway(request, ini, always_log=always, processes=processes, threads=10) as server:
        yield server


@pytest.fixture(scope="session")
def private_broker():
    """A RabbitMQ node of our own, which the tests may stop, block and cut."""
    broker = started_private_broker()
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
