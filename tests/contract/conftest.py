"""One gateway under ``hutch serve`` on a private RabbitMQ node, and its OpenAPI document.

The schema-driven tester names exchanges and queues at random and declares
durable ones; a node of its own keeps all of them off the shared broker and
goes away with them.
"""

import os
import pathlib
import re
import shutil
import tempfile

import pytest
import schemathesis

from tests.support.private_broker import BrokerStartError, PrivateBroker
from tests.support.server import GatewayServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY = "contract-tests-full-access-key-0123456789"  # contract.ini: may do everything


def write_ini(amqp_url):
    """``contract.ini`` with absolute paths and ``amqp_url``, in a directory www-data can read."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-contract-ini-"))
    os.chmod(directory, 0o755)
    text = (HERE / "contract.ini").read_text().replace("%(here)s/../..", str(ROOT))
    line = f"amqp_url = {amqp_url.replace('%', '%%')}"
    text = re.sub(r"^amqp_url = .*$", line, text, count=1, flags=re.MULTILINE)
    path = directory / "gateway.ini"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


@pytest.fixture(scope="session")
def contract_broker():
    for attempt in (1, 2):  # a port picked as free may be taken before the node binds it
        broker = PrivateBroker(prefix="hutch-contract")
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


@pytest.fixture(scope="session")
def contract_gateway(request, contract_broker):
    ini = write_ini(contract_broker.amqp_url)
    server = GatewayServer(ini, prefix="/gateway", processes=1, threads=10)
    failures = request.session.testsfailed
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failures:
            print(f"\n=== gateway log ({server.url})\n{server.logs()[-8000:]}")
        server.cleanup()
        shutil.rmtree(ini.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def contract_schema(contract_gateway):
    """The document the gateway serves, as the tester reads it."""
    return schemathesis.openapi.from_url(contract_gateway.url + "/openapi.json", timeout=30)
