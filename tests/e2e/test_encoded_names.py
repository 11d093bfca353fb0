"""An encoded slash in a name (``%2F``: what generated clients send for "/") is a bad name like any
other: the JSON 400 ``invalid_name`` on every route that takes a name, through either front
(``hutch serve`` with Apache alone, or HAProxy in front of it), never the web server's HTML 404."""

import re

import pytest
import requests

from harness.server import GatewayServer
from tests.e2e.client import FULL_KEY, PREFIX, assert_error

from .conftest import HERE

pytestmark = pytest.mark.e2e

GOOD = {"exchange": "t.enc.x", "routing_key": "work", "consumer": "billing"}


def name_routes(document):
    """``(method, path template, name)`` for every documented operation and each name it takes."""
    for path, operations in document["paths"].items():
        for name in re.findall(r"{(\w+)}", path):
            if name in GOOD:
                for method in operations:
                    yield method.upper(), path, name


@pytest.fixture(scope="module", params=["apache", "haproxy"])
def fronted(request):
    server = GatewayServer(
        HERE / "test.ini", prefix=PREFIX, processes=1, threads=4, extra_args=["--front", request.param]
    )
    server.start()
    yield server
    server.stop()
    server.cleanup()


def test_an_encoded_slash_in_any_name_is_invalid_name(fronted):
    document = requests.get(f"{fronted.url}/openapi.json", timeout=10).json()
    checked = []
    for method, template, bad in name_routes(document):
        names = {**GOOD, bad: "bad%2Fname"}
        path = re.sub(r"{(\w+)}", lambda match, names=names: names[match.group(1)], template)
        answer = requests.request(
            method,
            fronted.url + path,
            headers={"Authorization": f"Bearer {FULL_KEY}", "Accept": "application/json"},
            timeout=10,
        )
        assert_error(answer, 400, "invalid_name")
        checked.append((method, template, bad))
    assert {template for _method, template, _bad in checked} >= {
        "/broadcast/{exchange}",
        "/notify/{exchange}/queues/{consumer}",
        "/rpc/{exchange}/{routing_key}",
        "/events/{exchange}",
        "/dashboard/{exchange}",
    }
