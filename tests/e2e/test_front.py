"""The default front (HAProxy in ``hutch serve``): capacity, connection routing, a crowd at stop.

A host holds ``--max-streams`` viewers; the next one gets 503 ``too_many_streams`` with
``Retry-After`` at once, and requests are answered meanwhile.  A connection goes where its first
request goes, so browsers' connections to Apache are not kept alive, and a stream asked for on one
that is (an API client's) is still served, by Apache's proxy.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import time
import uuid

import pytest
import requests

from harness import amqp
from harness.server import GatewayServer, children_of, gateway_ini

HERE = pathlib.Path(__file__).resolve().parent
KEY = "Bearer e2e-full-access-key-0123456789"  # test.ini
CAPACITY = 12
BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


class Viewer:
    """One raw-socket viewer: sends its GET, reads the status line and what follows."""

    def __init__(self, server, exchange):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        head = f"GET {server.prefix}/events/{exchange} HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\n\r\n"
        self.sock.sendall(head.encode())
        self.received = b""

    def read_until(self, marker):
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.received += chunk
        return marker in self.received

    def status(self):
        self.read_until(b"\r\n\r\n")
        return int(self.received.split(b" ", 2)[1])

    def head_and_body(self):
        """For a refusal: its head and its body, read to the end (the front closes the connection)."""
        self.read_until(b"\r\n\r\n")
        head, _, body = self.received.partition(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(
                b":"
            )[1]
        )
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return head.decode("latin-1"), body[:length]

    def at_end(self):
        """Whether the server closed the stream (read to EOF)."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return True
            self.received += chunk

    def close(self):
        self.sock.close()


@pytest.fixture
def small_host():
    """A host for ``CAPACITY`` viewers.  Heartbeats every second: the front sees that a viewer left
    when it writes to its socket."""
    ini = gateway_ini(HERE / "test.ini", BROKER, {"events_heartbeat": 1})
    server = GatewayServer(ini, processes=1, threads=2, extra_args=["--max-streams", str(CAPACITY)])
    server.start()
    yield server
    server.stop()
    server.cleanup()
    shutil.rmtree(ini.parent, ignore_errors=True)


def test_a_crowd_beyond_capacity_gets_503_at_once_and_a_broadcast_meanwhile_reaches_every_viewer(small_host):
    exchange = f"t.front.{uuid.uuid4().hex[:8]}"
    viewers = []
    try:
        for _ in range(CAPACITY):
            viewers.append(Viewer(small_host, exchange))
            assert viewers[-1].status() == 200, viewers[-1].received
            assert viewers[-1].read_until(b"event: ready")
        refused = [Viewer(small_host, exchange) for _ in range(5)]
        for viewer in refused:
            head, body = viewer.head_and_body()
            assert head.startswith("HTTP/1.1 503 "), head
            assert "\r\nRetry-After: 5" in head and "\r\nContent-Type: application/json" in head
            assert json.loads(body)["error"] == "too_many_streams"
            assert viewer.at_end()  # refused, not held
            viewer.close()
        # the crowd is open and over capacity: requests have their own share, and are answered
        assert requests.get(small_host.url + "/health", timeout=30).status_code == 200
        published = requests.post(
            f"{small_host.url}/broadcast/{exchange}",
            data=b"crowd-check",
            headers={"Authorization": KEY, "Content-Type": "text/plain"},
            timeout=30,
        )
        assert published.status_code == 202, published.text
        for viewer in viewers:
            assert viewer.read_until(b'"body":"crowd-check"')
        # a viewer that leaves frees its place (once a heartbeat found its socket closed)
        viewers.pop().close()
        deadline = time.monotonic() + 30
        while True:
            again = Viewer(small_host, exchange)
            if again.status() == 200 or time.monotonic() > deadline:
                break
            again.close()
            time.sleep(0.2)
        viewers.append(again)
        assert again.status() == 200
    finally:
        for viewer in viewers:
            viewer.close()
        amqp.delete(exchanges=[exchange])


def raw_request(sock, head):
    """Send ``head`` on ``sock``; the answer's head (its body read, so the connection can go on)."""
    sock.sendall(head.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    while length and len(body) < int(length.group(1)):
        body += sock.recv(65536)
    return head.decode("latin-1")


def closed_by_server(sock):
    return sock.recv(1) == b""


def test_a_browsers_connection_to_apache_is_not_kept_alive_an_api_clients_is(small_host):
    """A browser would reuse a kept connection for its EventSource, which Apache would then proxy."""
    with socket.create_connection(("127.0.0.1", small_host.port), timeout=30) as browser:
        head = raw_request(browser, f"GET {small_host.prefix}/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 200 ") and "\r\nConnection: close" in head
        assert closed_by_server(browser)
    with socket.create_connection(("127.0.0.1", small_host.port), timeout=30) as client:
        request = f"GET {small_host.prefix}/health HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\n\r\n"
        head = raw_request(client, request)
        assert head.startswith("HTTP/1.1 200 ") and "Connection: close" not in head
        # the same connection asks for a stream: Apache proxies it to the event servers
        exchange = f"t.front.{uuid.uuid4().hex[:8]}"
        client.settimeout(30)
        stream = (
            f"GET {small_host.prefix}/events/{exchange} HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\n\r\n"
        )
        client.sendall(stream.encode())
        received = b""
        while b"event: ready" not in received:
            chunk = client.recv(65536)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")
        amqp.delete(exchanges=[exchange])


def test_a_stream_connection_serves_one_request():
    """The front takes an events connection over as HTTP and closes it after its one answer, so the
    next request is routed again (here: an unknown exchange name, refused by the event server)."""
    server = GatewayServer(HERE / "test.ini", processes=1, threads=2)
    try:
        server.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            head = raw_request(sock, f"GET {server.prefix}/events/t.x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert head.startswith("HTTP/1.1 401 ") and "\r\nConnection: close" in head
            assert closed_by_server(sock)
    finally:
        server.stop()
        server.cleanup()


@pytest.mark.parametrize("how", ["sigterm", "apachectl-restart"])
def test_stopping_or_restarting_with_a_crowd_open_leaves_no_process_behind(how):
    """Viewers are open when ``hutch serve`` is stopped (SIGTERM) or Apache restarted (SIGHUP: the
    event servers are replaced); each stream ends, and no process outlives ``hutch serve``."""
    exchange = f"t.front.{uuid.uuid4().hex[:8]}"
    server = GatewayServer(HERE / "test.ini", processes=1, threads=2)
    viewers = []
    try:
        server.start()
        viewers = [Viewer(server, exchange) for _ in range(30)]
        assert all(viewer.status() == 200 for viewer in viewers)
        first = {pid for pid, _daemon in children_of(server.process.pid)}
        if how == "apachectl-restart":
            server.process.send_signal(signal.SIGHUP)
            for viewer in viewers:
                assert viewer.at_end()  # each stream ended (closing), the viewers reconnect
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with_restart = Viewer(server, exchange)
                if with_restart.status() == 200:
                    break
                with_restart.close()
                time.sleep(0.5)
            viewers.append(with_restart)
            assert with_restart.status() == 200
        everyone = first | {pid for pid, _daemon in children_of(server.process.pid)}
        grandchildren = {pid for parent in everyone for pid, _daemon in children_of(parent)}
        os.kill(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=60)
        deadline = time.monotonic() + 15
        while any(pathlib.Path(f"/proc/{pid}").exists() for pid in everyone | grandchildren):
            assert time.monotonic() < deadline, "a process outlived hutch serve"
            time.sleep(0.2)
        for viewer in viewers:
            assert viewer.at_end()
    finally:
        for viewer in viewers:
            viewer.close()
        server.stop()
        server.cleanup()
        amqp.delete(exchanges=[exchange])
