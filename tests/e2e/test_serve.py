"""``hutch serve`` with no --ini and no HUTCH_INI: gateway.wsgi serves production.ini by itself."""

import pytest
import requests

from tests.support.server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


def test_serve_without_ini_serves_production_ini_at_the_root():
    server = GatewayServer(None, prefix="", processes=1, threads=2)
    command = server.command()
    assert "--ini" not in command
    try:
        server.start()
        health = requests.get(server.url + "/health", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"broker": "ok"}
        # production.ini turns API keys on: a publish without one is refused
        refused = requests.post(server.url + "/broadcast/t.serve-check", data=b"x", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        # mounted at the root, Apache's own answers are the contract's JSON as well
        trace = requests.request("TRACE", server.url + "/health", timeout=10)
        assert (trace.status_code, trace.headers["Allow"]) == (405, "GET, HEAD")
        assert trace.json()["error"] == "method_not_allowed"
        unreadable = requests.get(server.url + "/health", headers={"X-Big": "b" * 9000}, timeout=10)
        assert unreadable.status_code == 400 and unreadable.json()["error"] == "bad_request"
    finally:
        server.stop()
        server.cleanup()
