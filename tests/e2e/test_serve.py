"""``hutch serve`` with no --ini and no HUTCH_INI: gateway.wsgi serves production.ini by itself."""

import os
import pathlib
import signal
import time

import pytest
import requests

from harness.server import GatewayServer, children_of

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


def pids_alive(pids):
    return [pid for pid in pids if pathlib.Path(f"/proc/{pid}").exists()]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_serve_stops_apache_and_its_event_servers_together(how):
    """Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) or SIGTERM to
    ``hutch serve`` (as a service manager does) stops Apache and every event server."""
    server = GatewayServer(None, prefix="", processes=1, threads=2)
    try:
        server.start()
        # the event servers answer under the mount point, through Apache's proxy
        events = requests.get(server.url + "/events/t.serve-check", timeout=10)
        assert (events.status_code, events.json()["error"]) == (401, "unauthorized")
        children = [pid for pid, _daemon in children_of(server.process.pid)]
        assert len(children) >= 3  # Apache and two event servers
        if how == "ctrl-c":
            os.killpg(server.process.pid, signal.SIGINT)
        else:
            server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while pids_alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids_alive(children) == []
        assert "restarting it" not in server.logs(), "an event server was started again while stopping"
    finally:
        server.stop()
        server.cleanup()
