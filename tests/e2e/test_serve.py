"""``hutch serve``: production.ini by default; HAProxy in front of Apache and the event servers, on
one port; it stops as one, and fails loudly when its front cannot start."""

import concurrent.futures
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests

from harness import amqp
from harness.server import GatewayServer, children_of, free_port

HERE = pathlib.Path(__file__).resolve().parent
KEY = "Bearer e2e-full-access-key-0123456789"  # test.ini

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


def command_of(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pids_alive(pids):
    return [pid for pid in pids if pathlib.Path(f"/proc/{pid}").exists()]


@pytest.mark.parametrize("front", ["apache", "haproxy"])
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_serve_stops_apache_and_its_event_servers_together(how, front):
    """Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) or SIGTERM to
    ``hutch serve`` (as a service manager does) stops Apache and every event server."""
    server = GatewayServer(None, prefix="", processes=1, threads=2, extra_args=["--front", front])
    try:
        server.start()
        # the event servers answer under the mount point, through the front proxy
        events = requests.get(server.url + "/events/t.serve-check", timeout=10)
        assert (events.status_code, events.json()["error"]) == (401, "unauthorized")
        children = [pid for pid, _daemon in children_of(server.process.pid)]
        haproxy = [pid for pid in children if command_of(pid).split(b"\0")[0].endswith(b"/haproxy")]
        assert len(haproxy) == (1 if front == "haproxy" else 0)
        assert len(children) >= 3 + len(haproxy)  # Apache, two event servers (and HAProxy)
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


def open_stream(url, exchange):
    """An open event stream (its ``ready`` event read) and the lines it yields."""
    response = requests.get(
        f"{url}/events/{exchange}", headers={"Authorization": KEY}, stream=True, timeout=(5, 30)
    )
    assert response.status_code == 200, response.text
    lines = response.iter_lines(decode_unicode=True)
    ready = False
    for line in lines:
        ready = ready or line == "event: ready"
        if ready and line == "":  # the end of the ready event
            return response, lines
    raise AssertionError("the stream ended before its ready event")


def test_streams_through_the_front_hold_no_apache_worker():
    """Apache gets 4 workers (``--max-clients 4``); 40 streams are open through the one port, and
    requests are still answered at once, and a broadcast through the same port reaches every stream."""
    exchange = f"t.serve.front.{uuid.uuid4().hex[:8]}"
    server = GatewayServer(
        HERE / "test.ini", processes=1, threads=2, extra_args=["--front", "haproxy", "--max-clients", "4"]
    )
    streams = []
    try:
        server.start()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            streams = list(pool.map(lambda _: open_stream(server.url, exchange), range(40)))
        for _ in range(10):
            started = time.monotonic()
            health = requests.get(server.url + "/health", timeout=10)
            assert health.status_code == 200 and time.monotonic() - started < 2
        published = requests.post(
            f"{server.url}/broadcast/{exchange}",
            data=b"front-check",
            headers={"Authorization": KEY, "Content-Type": "text/plain"},
            timeout=10,
        )
        assert published.status_code == 202, published.text
        for _response, lines in streams:
            data = next(line for line in lines if line.startswith("data: "))
            assert '"body":"front-check"' in data
    finally:
        for response, _lines in streams:
            response.close()
        server.stop()
        server.cleanup()
        amqp.delete(exchanges=[exchange])


def test_a_front_that_cannot_listen_stops_everything_and_says_why():
    """The public port is taken: HAProxy cannot bind it, and ``hutch serve`` exits non-zero with its
    reason instead of serving on a port that is not its own; no event server is left behind."""
    events_port = free_port()
    server = GatewayServer(
        HERE / "test.ini",
        processes=1,
        threads=2,
        extra_args=["--front", "haproxy", "--events-port", str(events_port)],
    )
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        done = subprocess.run(server.command(), capture_output=True, text=True, timeout=90)
    try:
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert f"hutch serve: haproxy could not serve 127.0.0.1:{server.port}" in output
        assert "cannot bind socket" in output  # HAProxy's own words
        assert "is HAProxy:" not in output  # never claimed to serve
        mark = b"hutch.events.main\0"
        port = f"--port\0{events_port}\0".encode()
        event_servers = [
            entry.name
            for entry in pathlib.Path("/proc").iterdir()
            if entry.name.isdigit() and mark in command_of(entry.name) and port in command_of(entry.name)
        ]
        assert event_servers == []
    finally:
        server.cleanup()


@pytest.mark.parametrize("events", ["2", "0"])
def test_output_redirected_to_a_file_keeps_what_came_before(tmp_path, events):
    """``bin/run > file 2>&1``: bin/setup's lines come first and stay; mod_wsgi-express opens
    /dev/stdout and /dev/stderr to check them, which must not truncate the file."""
    server = GatewayServer(
        HERE / "test.ini", processes=1, threads=2, extra_args=["--events-processes", events]
    )
    output = tmp_path / "run.log"
    command = " ".join(f"'{word}'" for word in server.command())
    server.process = subprocess.Popen(
        ["bash", "-c", f"exec > '{output}' 2>&1; echo bin/setup said this; exec {command}"],
        stdin=subprocess.DEVNULL,
        cwd=HERE,
        start_new_session=True,
    )
    server.log = None
    try:
        ready = False
        deadline = time.monotonic() + 60
        while not ready and time.monotonic() < deadline and server.process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                ready = requests.get(server.url + "/health", timeout=2).status_code == 200
            time.sleep(0.2)
        assert ready, output.read_text(errors="replace")
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        server.cleanup()
    text = output.read_bytes()
    assert text.startswith(b"bin/setup said this\n"), text[:300]
    assert b"\0" not in text
    assert b"Server URL" in text
