"""One gateway under mod_wsgi-express (daemon mode, prefix /gateway) for the whole e2e layer."""

import pathlib

import pytest

from harness.server import GatewayServer
from tests.e2e.client import PREFIX, Api

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def gateway():
    server = GatewayServer(HERE / "test.ini", prefix=PREFIX, processes=2, threads=10)
    server.start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture
def api(gateway):
    return Api(gateway.url)


@pytest.fixture
def anonymous(gateway):
    return Api(gateway.url, key=None)
