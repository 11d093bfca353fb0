"""One gateway under ``hutch serve`` on a private RabbitMQ node, and its OpenAPI document.

The schema-driven tester names exchanges and queues at random and declares
durable ones; a node of its own keeps all of them off the shared broker and
goes away with them.
"""

import pathlib

import pytest
import schemathesis

from harness.private_broker import started_private_broker
from harness.redis_node import PrivateRedis
from harness.server import gateway_ini, running_gateway

HERE = pathlib.Path(__file__).resolve().parent
KEY = "contract-tests-full-access-key-0123456789"  # contract.ini: may do everything


@pytest.fixture(scope="session")
def contract_broker():
    broker = started_private_broker(prefix="hutch-contract")
    try:
        yield broker
    finally:
        broker.stop()
        broker.cleanup()


@pytest.fixture(scope="session")
def contract_push_store():
    """The subscriptions the tester makes (push delivery) go to a Redis of their own, and away with it."""
    with PrivateRedis(persistent=False) as node:
        yield node.url


@pytest.fixture(scope="session")
def contract_gateway(request, contract_broker, contract_push_store):
    ini = gateway_ini(HERE / "contract.ini", contract_broker.amqp_url, {"push_store": contract_push_store})
    with running_gateway(request, ini, prefix="/gateway", processes=1, threads=10) as server:
        yield server


@pytest.fixture(scope="session")
def contract_schema(contract_gateway):
    """The document the gateway serves, as the tester reads it."""
    return schemathesis.openapi.from_url(contract_gateway.url + "/openapi.json", timeout=30)
