"""The front proxy on ``hutch serve``'s public port: HAProxy, routing each connection by its first request.

A connection whose first request is a complete head under ``{mount}/events/``
goes to the asyncio event servers (HAProxy takes it over as HTTP there: one
request, then the connection closes); every other connection goes, byte for
byte, to mod_wsgi-express on a loopback port.  Why not Apache's own proxy: a
stream proxied by ``mod_proxy_http`` holds an Apache worker thread for its
whole life (the event MPM frees a thread only for keep-alive connections and a
response's last write; its asynchronous proxying covers only ``Upgrade``
tunnels), and at 10,000 viewers request/response starved behind them.
HAProxy holds a stream as two sockets in its event loop.

Why by connection and not by request: HAProxy 2.6's HTTP/1 parser answers
what it cannot read (a ``Content-Length`` that is not a number, more header
fields than it holds, a head slower than its timeout) with its own HTML page,
before any ``errorfile`` applies.  Passed on untouched, those heads reach
Apache, which answers them with the contract's JSON (``hutch.web.server_errors``).
A connection that Apache serves stays Apache's: a stream asked for on it is
proxied by Apache (``--proxy-streams``), so Apache closes the connections of
requests without an API key (browsers: ``apache/hutch-behind-front.conf``) and
a browser opens its event streams on new connections.

Capacity: streams never take the last ``REQUEST_SLOTS`` of the front's
connections, and a viewer beyond that gets 503 ``too_many_streams`` with
``Retry-After`` at once.

``front_config`` writes the configuration (pure, for tests; the shipped
``apache/haproxy.cfg`` for a system Apache is the same text for
``production.ini``); ``FrontProxy`` checks, starts and stops it.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import resource
import shutil
import subprocess
import time

from hutch.errors import BadRequest, RequestTimeout, TooManyStreams
from hutch.inifile import ROOT

START_WAIT = 15  # seconds HAProxy may take to listen
FDS_PER_CONNECTION = 2  # a proxied connection is a client socket and a server socket
FD_RESERVE = 200  # descriptors kept for listeners, health checks, logs
MAX_CONNECTIONS = 100_000  # the most a front is sized for when the descriptor limit allows more
STREAM_SLACK = 60  # seconds a proxied stream may stay silent beyond its lifetime
REQUEST_SLOTS = 256  # connections kept for request/response however many streams are open
STREAM_QUEUE = 1  # seconds a stream may wait for a slot when viewers arrive together at the limit
HEAD_WAIT = 5  # seconds the front waits for a first head it can route; then Apache judges what came
RETRY_AFTER = 5  # seconds a refused viewer is told to wait
LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp
CHECK = "inter 2s fastinter 500ms downinter 1s fall 3 rise 1"


class FrontError(Exception):
    """The front proxy cannot start; the message says why."""


# What HAProxy answers itself (a head it cannot read, a slow client, a gateway down or silent), in
# the contract's JSON shape as Apache's own errors are (hutch.web.server_errors): status -> (code, detail).
FRONT_ERRORS = {
    400: (BadRequest.code, "The front proxy could not read the request head."),
    408: (RequestTimeout.code, RequestTimeout.detail),
    500: ("internal", "The front proxy failed to handle the request."),
    502: ("bad_gateway", "The server behind the front proxy sent no valid answer; retry shortly."),
    503: ("unavailable", "The server behind the front proxy is not available (starting, stopping or full)."),
    504: ("gateway_timeout", "The server behind the front proxy did not answer in time."),
}


@dataclasses.dataclass(frozen=True)
class FrontPlan:
    """Where the front listens and what it routes where."""

    host: str
    port: int
    mount_point: str
    gateway_port: int
    events_port: int
    gateway_timeout: (
        int  # seconds the gateway may stay silent (hutch.serve.plan.server_limits' socket timeout)
    )
    stream_lifetime: float  # events_max_lifetime: a stream's longest life
    max_connections: int
    user: str | None = None
    errors_directory: str | None = None  # the error answers (default: apache/haproxy-errors of this checkout)


def max_connections(limit=None):
    """How many connections the front may hold: two descriptors each within ``limit`` (default: this
    process's hard RLIMIT_NOFILE, which HAProxy may raise its own limit to)."""
    if limit is None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(100, min(MAX_CONNECTIONS, (limit - FD_RESERVE) // FDS_PER_CONNECTION))


def stream_slots(connections):
    """How many of the front's connections streams may hold: all but ``REQUEST_SLOTS``."""
    return max(1, connections - REQUEST_SLOTS)


ERRORS_DIRECTORY = ROOT / "apache" / "haproxy-errors"
REASONS = {400: "Bad Request", 408: "Request Timeout", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip
# HAProxy writes header names in lower case; clients of the contract see them as the gateway wrote them
HEADER_NAMES = (
    "Allow", "Cache-Control", "Connection", "Content-Length", "Content-Security-Policy", "Content-Type",
    "Date", "Location", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie", "Transfer-Encoding",
    "Vary", "WWW-Authenticate", "X-Accel-Buffering", "X-Content-Type-Options", "X-Frame-Options",
)  # fmt: skip


def error_file(status):
    """The whole HTTP answer HAProxy sends for ``status`` (``errorfile``): the contract's JSON."""
    code, detail = FRONT_ERRORS[status]
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\n"
        + (f"Retry-After: {RETRY_AFTER}\r\n" if status == 503 else "")
        + "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def streams_full_answer():
    """The JSON body of the 503 a viewer gets when the host holds all the streams it may."""
    detail = "This host serves as many event streams as it may; retry shortly."
    return json.dumps({"error": TooManyStreams.code, "detail": detail}, separators=(",", ":"))


def events_path(mount_point):
    return mount_point.rstrip("/") + "/events/"


def front_config(plan):
    """The haproxy.cfg text for ``plan``."""
    stream_timeout = int(plan.stream_lifetime) + STREAM_SLACK
    mount = plan.mount_point.rstrip("/")
    rewrite = ""
    if mount:  # the event servers serve /events/{exchange}: the mount point is the front's business
        rewrite = f"    http-request replace-path ^{mount}(/events/.*) \\1\n"
    user = f"    user {plan.user}\n    group {plan.user}\n" if plan.user else ""
    slots = stream_slots(plan.max_connections)
    directory = plan.errors_directory or ERRORS_DIRECTORY
    errors = "\n".join(f"    errorfile {status} {directory}/{status}.http" for status in sorted(FRONT_ERRORS))
    full = (
        f"http-request return status 503 content-type application/json string '{streams_full_answer()}' "
        f"hdr Retry-After {RETRY_AFTER} hdr Cache-Control no-cache if {{ be_conn gt {slots} }}"
    )
    cases = "\n".join(f"    h1-case-adjust {name.lower()} {name}" for name in HEADER_NAMES)
    return f"""\
# The front proxy of Hutch: a connection whose first request is for {events_path(plan.mount_point)}
# goes to the asyncio event servers, every other one to the gateway (Apache + mod_wsgi).  A stream
# costs two sockets here, no thread (hutch/serve/front.py).
global
    maxconn {plan.max_connections}
    log stderr format raw daemon notice
    noreuseport
    hard-stop-after 10s
{cases}
{user}
defaults
    mode http
    log global
    option dontlognull
    timeout connect 5s
    # the client side may be silent as long as a stream lives (a viewer only reads)
    timeout client {stream_timeout}s
    timeout http-request 20s
    timeout http-keep-alive 5s
    timeout queue {STREAM_QUEUE}s
    retries 2
{errors}

frontend hutch
    mode tcp
    bind {plan.host}:{plan.port}
    option h1-case-adjust-bogus-client
    # A connection goes where its first request goes: a complete head under the events path to the
    # event servers; anything else, readable or not, complete or not after {HEAD_WAIT} s, untouched to
    # Apache, which answers malformed and slow heads with the contract's JSON itself.
    tcp-request inspect-delay {HEAD_WAIT}s
    tcp-request content accept if HTTP
    use_backend events if HTTP {{ path_beg {events_path(plan.mount_point)} }}
    default_backend gateway

backend gateway
    mode tcp
    timeout server {plan.gateway_timeout}s
    # no health check: Apache is the only place for these connections, and a check that times out
    # while every daemon thread waits on the broker would leave HAProxy closing them unanswered
    server gateway 127.0.0.1:{plan.gateway_port}

backend events
    option httpchk GET /health
    http-check expect rstatus ^(200|503)$
    option forwardfor
    # every event on its way at once: no waiting to fill a packet (MSG_MORE, Nagle)
    option http-no-delay
    retry-on conn-failure
    # above the longest life of a stream (events_max_lifetime; heartbeats come far more often)
    timeout server {stream_timeout}s
    # streams never take the last {REQUEST_SLOTS} connections: a viewer beyond gets its 503 at once
    # (be_conn counts the viewer asking)
    {full}
    # one request per connection: the next one on it must be routed again
    http-after-response set-header Connection close
{rewrite}    server events 127.0.0.1:{plan.events_port} check {CHECK} maxconn {slots}
"""


def listens(pid, port):
    """Whether process ``pid`` itself holds a socket listening on TCP ``port`` (a connection could
    reach another program on a port HAProxy failed to take)."""
    sockets = set()
    with contextlib.suppress(OSError):
        for descriptor in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(descriptor)
                if target.startswith("socket:["):
                    sockets.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in pathlib.Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port and inode in sockets:
                    return True
    return False


def haproxy_binary():
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


class FrontProxy:
    """``haproxy -db`` (foreground, logging to stderr) with the config written to ``directory``."""

    def __init__(self, plan, directory):
        self.plan = plan
        self.config_path = pathlib.Path(directory) / "haproxy.cfg"
        self.process = None

    def check(self):
        """Write the configuration and have HAProxy validate it; FrontError with its words if not."""
        binary = haproxy_binary()
        if binary is None:
            raise FrontError("haproxy is not installed (apt-get install haproxy; bin/setup does)")
        self.binary = binary
        self.config_path.write_text(front_config(self.plan))
        done = subprocess.run(  # noqa: S603 - our own command
            [binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise FrontError(f"haproxy refused {self.config_path}: {(done.stdout + done.stderr).strip()}")

    def start(self):
        """Start HAProxy and wait until it listens; FrontError (with its own words) if it exits."""
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [self.binary, "-db", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FrontError(
                    f"haproxy could not serve {self.plan.host}:{self.plan.port} (exit status "
                    f"{self.process.returncode}); its own words are above"
                )
            if listens(self.process.pid, self.plan.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise FrontError(f"haproxy did not listen on {self.plan.host}:{self.plan.port} in {START_WAIT} s")

    def poll(self):
        return self.process.poll() if self.process is not None else 0

    def send_signal(self, signum):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout=10):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
