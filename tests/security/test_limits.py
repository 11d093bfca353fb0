"""End to end: slow and oversized requests are cut off by Apache, before the gateway's threads.

The gateway runs under ``hutch serve`` (mod_wsgi-express, daemon mode) with
the flags it derives from ``limits.ini``, behind its default front (HAProxy,
which passes every connection that is not an event stream to Apache byte for
byte, so these are Apache's answers, as without a front); raw sockets send what no client
library would: headers one byte a second, a body that never ends, a header
line of 10 KB, 2 MB announced in Content-Length.  Each must end in an HTTP
error or a closed connection within a bound.  The limits (hutch.serve.plan,
apache/hutch.conf):

- request line and headers: 10 s, +1 s per 500 bytes, at most 20 s -> 408
- body: 20 s, +1 s per 500 bytes -> 408 / closed
- request body: max_body_bytes + 64 KiB (1,114,112 bytes) -> 413 from Apache,
  above max_body_bytes (1 MiB) -> the contract's JSON 413 from the gateway
- a header field: 8,190 bytes -> 400; at most 100 fields -> 400
- the request line: 8,190 bytes -> 414
- Content-Length that is not a number -> 400 from Apache

Apache's own answers carry the contract's JSON too (its ErrorDocuments,
``hutch.web.server_errors``), with a detail that says the server refused them.
"""

import base64
import json
import pathlib
import re
import select
import socket
import threading
import time
import uuid

import pytest

from harness.amqp import BROADCAST, BoundQueue, delete
from harness.server import GatewayServer
from hutch.web.server_errors import STATIC_ERRORS

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

INI = pathlib.Path(__file__).with_name("limits.ini")
KEY = "limits-test-secret-key-0123456789"
MAX_BODY_BYTES = 1024 * 1024
APACHE_BODY_LIMIT = MAX_BODY_BYTES + 64 * 1024
HEADER_MAX_TIMEOUT = 20
BODY_TIMEOUT = 20
SLACK = 15  # seconds beyond a limit before the test calls the connection unbounded


@pytest.fixture(scope="module")
def server():
    gateway = GatewayServer(INI, processes=1, threads=4)
    gateway.start()
    yield gateway
    gateway.stop()
    gateway.cleanup()


class Connection:
    """One raw HTTP/1.1 connection; every read is bounded by ``deadline``."""

    def __init__(self, server):
        self.prefix = server.prefix
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.received = b""
        self.closed = False

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False

    def poll(self, wait=0.0):
        """Read what has arrived; note when the server closed the connection."""
        while not self.closed and select.select([self.sock], [], [], wait)[0]:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.received += chunk
            wait = 0.0

    def answer(self, timeout=15):
        """The server's response (status, head, body) once it is complete or the connection closed."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline and not self.complete():
            self.poll(0.2)
        return self.status(), self.received

    def complete(self):
        head, sep, body = self.received.partition(b"\r\n\r\n")
        if not sep:
            return False
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return len(body) >= int(line.split(b":")[1])
        return False

    def status(self):
        if not self.received.startswith(b"HTTP/1."):
            return None
        return int(self.received.split(b" ", 2)[1])

    def close(self):
        self.sock.close()


def apache_error(received, status):
    """The body of Apache's answer: the contract's JSON error of its error document for ``status``."""
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    # framed by Content-Length: after a chunked body over the limit, mod_wsgi writes a stray
    # page of its own behind it, on a connection Apache closes
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    error = STATIC_ERRORS[status]
    assert json.loads(body[:length]) == {"error": error.code, "detail": error.detail}


def request_head(method, path, headers=(), server_prefix="/gateway"):
    lines = [f"{method} {server_prefix}{path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def trickle(server, first, drip, give_up_after):
    """Send ``first``, then one byte of ``drip`` a second, until the server answers or closes."""
    connection = Connection(server)
    started = time.monotonic()
    connection.send(first)
    sent = 0
    while time.monotonic() - started < give_up_after:
        connection.poll(1.0)
        if connection.closed or connection.received:
            break
        if not connection.send(drip[sent % len(drip) : sent % len(drip) + 1]):
            break
        sent += 1
    connection.answer(timeout=5)
    connection.close()
    return connection.status(), connection.closed, time.monotonic() - started, connection.received


@pytest.fixture(scope="module")
def slow_clients(server):
    """Slowloris: headers, or a body, one byte a second.  Both run at once to share the wait.

    Returns {case: (status, closed, seconds, what was received, limit)}.
    """
    exchange = f"t.limits.{uuid.uuid4().hex[:8]}"
    slow_headers = (request_head("GET", "/health"), b"X-Slow: " + b"a" * 200)
    body_head = request_head(
        "POST",
        f"/broadcast/{exchange}",
        [f"Authorization: Bearer {KEY}", "Content-Type: application/json", "Content-Length: 100000"],
    )
    slow_body = (body_head + b"\r\n", b"x")
    cases = {"headers": (slow_headers, HEADER_MAX_TIMEOUT), "body": (slow_body, BODY_TIMEOUT)}
    outcomes = {}

    def run(name, parts, limit):
        outcomes[name] = (*trickle(server, *parts, give_up_after=limit + SLACK), limit)

    threads = [threading.Thread(target=run, args=(name, *case)) for name, case in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HEADER_MAX_TIMEOUT + BODY_TIMEOUT + 2 * SLACK)
    print(f"slow clients (status, closed, seconds): { {k: v[:3] for k, v in outcomes.items()} }")
    yield outcomes
    delete(exchanges=[exchange])


@pytest.mark.parametrize("case", ["headers", "body"])
def test_slow_clients_are_cut_off(slow_clients, case):
    status, closed, elapsed, received, limit = slow_clients[case]
    assert status in (400, 408) or (status is None and closed), (case, status, closed, elapsed)
    if status is not None:
        apache_error(received, status)  # Apache's answer, in the contract's JSON
    assert elapsed < limit + SLACK, f"{case}: a slow client held a connection {elapsed:.0f} s"


def test_a_body_that_times_out_is_not_logged_as_a_crash(server, slow_clients):
    deadline = time.monotonic() + 10
    while "Request data read error" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = server.logs()
    assert "Request data read error" in logs, "the slow body never reached the daemon"
    assert "Traceback" not in logs, logs[-3000:]


@pytest.mark.parametrize(
    ("what", "head", "status"),
    [
        ("a 10 KB header field", request_head("GET", "/health", ["X-Big: " + "a" * 10_000]), 400),
        ("101 header fields", request_head("GET", "/health", [f"X-H{i}: v" for i in range(101)]), 400),
        ("a 9 KB request line", request_head("GET", "/health?" + "q" * 9_000), 414),
        ("Content-Length abc", request_head("POST", "/broadcast/t.limits.x", ["Content-Length: abc"]), 400),
        ("Content-Length -1", request_head("POST", "/broadcast/t.limits.x", ["Content-Length: -1"]), 400),
    ],
)
def test_oversized_or_malformed_heads_are_refused_by_apache(server, what, head, status):
    connection = Connection(server)
    try:
        connection.send(head + b"\r\n")
        answered, received = connection.answer()
        assert answered == status, f"{what}: {connection.received[:300]!r}"
        apache_error(received, status)
    finally:
        connection.close()


def authorized_head(path, length=None, chunked=False):
    headers = [f"Authorization: Bearer {KEY}", "Content-Type: application/octet-stream"]
    headers.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return request_head("POST", path, headers) + b"\r\n"


def test_a_body_over_apaches_limit_is_refused_before_it_is_sent(server):
    connection = Connection(server)
    try:
        connection.send(authorized_head("/broadcast/t.limits.x", length=APACHE_BODY_LIMIT + 1))
        status, received = connection.answer()  # no body sent at all: Apache answers from the head
        assert status == 413
        apache_error(received, 413)  # Apache's document, not the gateway's answer
    finally:
        connection.close()


def test_a_chunked_body_over_apaches_limit_gets_one_json_413(server, unique_name):
    """Apache leaves chunked bodies to the gateway: its own 413 would be followed by mod_wsgi's 500."""
    exchange = unique_name("limits")
    connection = Connection(server)
    try:
        connection.send(authorized_head(f"/broadcast/{exchange}", chunked=True))
        chunk = b"%x\r\n%s\r\n" % (65536, b"c" * 65536)
        for _ in range(APACHE_BODY_LIMIT // 65536 + 4):
            if not connection.send(chunk):
                break
            connection.poll()
            if connection.received or connection.closed:
                break
        connection.send(b"0\r\n\r\n")
        status, received = connection.answer()
        assert status == 413
        assert json.loads(received.partition(b"\r\n\r\n")[2])["error"] == "payload_too_large"
        assert b"500 Internal Server Error" not in received
    finally:
        connection.close()
        delete(exchanges=[exchange])


def test_a_body_over_max_body_bytes_gets_the_contracts_413(server, unique_name):
    exchange = unique_name("limits")
    connection = Connection(server)
    try:
        connection.send(authorized_head(f"/broadcast/{exchange}", length=MAX_BODY_BYTES + 1))
        connection.send(b"b" * (MAX_BODY_BYTES + 1))
        status, received = connection.answer()
        assert status == 413
        assert json.loads(received.partition(b"\r\n\r\n")[2])["error"] == "payload_too_large"
    finally:
        connection.close()
        delete(exchanges=[exchange])


def test_the_api_key_reaches_the_gateway_through_apache(server, unique_name):
    """mod_wsgi drops Authorization unless told to pass it (WSGIPassAuthorization)."""
    exchange = unique_name("limits")
    basic = base64.b64encode(f"limits:{KEY}".encode()).decode()
    with BoundQueue(exchange, BROADCAST) as queue:
        results = {}
        for name, header in {"none": None, "bearer": f"Bearer {KEY}", "basic": f"Basic {basic}"}.items():
            connection = Connection(server)
            headers = ["Content-Length: 2", "Connection: close"]
            headers += [f"Authorization: {header}"] if header else []
            connection.send(request_head("POST", f"/broadcast/{exchange}", headers) + b"\r\n{}")
            results[name] = connection.answer()
            connection.close()
        assert results["none"][0] == 401
        assert b'WWW-Authenticate: Bearer realm="hutch", Basic realm="hutch"' in results["none"][1]
        assert results["bearer"][0] == 202 and results["basic"][0] == 202
        assert queue.get()[2] == b"{}" and queue.get()[2] == b"{}"
    delete(exchanges=[exchange])
