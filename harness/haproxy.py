"""Debian's HAProxy in front of several gateway hosts, configured and started by the tests.

The configuration is the one docs/deployment.md's "Production topology" shows:
round robin over the hosts, a health check of ``/health`` (a host whose
broker is unreachable, or that is stopped, leaves the rotation), and
``timeout server``/``timeout tunnel`` above the event streams' lifetime so
HAProxy never cuts a stream the gateway would have kept.  Each answer says
which host served it in ``X-Served-By``; the admin socket takes a host out
of the rotation (``set_state``) before it is stopped.
"""

import contextlib
import pathlib
import socket
import subprocess
import tempfile
import time

import requests

from .process import ScratchProcess, terminate
from .server import free_port

CONFIG = """\
global
    maxconn 2048
    stats socket {admin_socket} mode 600 level admin

defaults
    mode http
    option httplog
    timeout connect 2s
    timeout client {client_timeout}s
    timeout server {server_timeout}s
    timeout tunnel {server_timeout}s
    timeout http-request 10s
    timeout queue 30s
    # a connection refused by a stopped host is retried on another one (the request was never sent)
    retries 2
    option redispatch
    retry-on conn-failure

frontend gateway
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET {health_path}
    http-check expect status 200
    default-server inter {check_interval_ms}ms fastinter 250ms downinter 1s fall 2 rise 2
    http-response set-header X-Served-By %[srv_name]
{servers}
"""


def haproxy_config(port, backends, health_path, stream_lifetime, admin_socket, check_interval_ms=500):
    """The haproxy.cfg text: ``backends`` maps a host name to its port on 127.0.0.1."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{backend} check" for name, backend in backends.items())
    server_timeout = int(stream_lifetime) + 60  # above the longest event stream, and any RPC
    return CONFIG.format(
        port=port,
        health_path=health_path,
        servers=servers,
        server_timeout=server_timeout,
        client_timeout=server_timeout,
        check_interval_ms=check_interval_ms,
        admin_socket=admin_socket,
    )


class LoadBalancer(ScratchProcess):
    """``haproxy -db`` (foreground) on a free port; stopped by its pid."""

    def __init__(self, backends, health_path="/gateway/health", stream_lifetime=300):
        self.port = free_port()
        self.backends = dict(backends)
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-haproxy-"))
        self.config_path = self.directory / "haproxy.cfg"
        self.admin_socket = self.directory / "admin.sock"
        config = haproxy_config(self.port, self.backends, health_path, stream_lifetime, self.admin_socket)
        self.config_path.write_text(config)
        self.process = None
        self.log = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path="/gateway/health", timeout=30):
        check = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        self.log = open(self.directory / "haproxy.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.logs()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.origin + ready_path, timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"haproxy on {self.port} did not serve {ready_path} in {timeout} s:\n{self.logs()}"
        )

    def wait_until_serving(self, hosts, path="/gateway/health", timeout=30):
        """Until each of ``hosts`` has answered through HAProxy (its health check passed)."""
        seen = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(hosts) <= seen:
            with contextlib.suppress(requests.RequestException):
                response = requests.get(self.origin + path, timeout=2)
                if response.status_code == 200:
                    seen.add(response.headers.get("X-Served-By"))
            time.sleep(0.05)
        missing = set(hosts) - seen
        if missing:
            raise RuntimeError(f"HAProxy never sent a request to {sorted(missing)}:\n{self.logs()}")

    def set_state(self, host, state):
        """``ready``, ``drain`` or ``maint`` for one host, through HAProxy's runtime API (admin socket)."""
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as admin:
            admin.settimeout(5)
            admin.connect(str(self.admin_socket))
            admin.sendall(f"set server gateways/{host} state {state}\n".encode())
            answer = admin.recv(4096).decode(errors="replace").strip()
        if answer:
            raise RuntimeError(f"haproxy refused 'set server gateways/{host} state {state}': {answer}")

    def logs(self, tail=8000):
        path = self.directory / "haproxy.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self):
        terminate(self.process)
        if self.log is not None:
            self.log.close()
            self.log = None
