"""apache/hutch.conf itself, in a real Apache: the production configuration serves the gateway.

A minimal httpd.conf loads mod_wsgi from this venv (``mod_wsgi-express
module-config``, as apache/README.md says), defines HUTCH_HOME as this
checkout and includes hutch.conf unchanged; only the socket folder is moved
to a private directory.  The gateway then serves production.ini, found by
gateway.wsgi with no environment at all.
"""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

import pytest
import requests

from harness import amqp
from harness.server import free_port
from hutch.web.server_errors import STATIC_ERRORS
from tests.e2e.client import assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def prepare_var(user="www-data"):
    """apache/README.md's install step: a var/ folder the daemon owns (secret, API keys)."""
    var = ROOT / "var"
    if not var.exists():
        subprocess.run(["install", "-d", "-o", user, "-g", user, "-m", "0700", str(var)], check=True)


@pytest.fixture(scope="module")
def apache():
    server_root = pathlib.Path(tempfile.mkdtemp(prefix="hutch-apache-"))
    os.chmod(server_root, 0o755)  # Apache's www-data children reach the daemon sockets here
    port = free_port()
    module_config = subprocess.run(
        [str(VENV_BIN / "mod_wsgi-express"), "module-config"], capture_output=True, text=True, check=True
    ).stdout
    conf = server_root / "httpd.conf"
    conf.write_text(
        f"ServerRoot {server_root}\n"
        f"PidFile {server_root}/httpd.pid\n"
        f"DefaultRuntimeDir {server_root}\n"
        "ServerName 127.0.0.1\n"
        f"Listen 127.0.0.1:{port}\n"
        f"ErrorLog {server_root}/error_log\n"
        "LogLevel warn\n"
        "User www-data\n"
        "Group www-data\n"
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
        "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n"
        "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
        "LoadModule reqtimeout_module /usr/lib/apache2/modules/mod_reqtimeout.so\n"
        f"{module_config}\n"
        f"Define HUTCH_HOME {ROOT}\n"
        f"Include {ROOT}/apache/hutch.conf\n"
        f"WSGISocketPrefix {server_root}/wsgi\n"
    )
    prepare_var()
    environment = {key: value for key, value in os.environ.items() if key != "HUTCH_INI"}
    process = subprocess.Popen(
        # by its full path, as init systems start it: mod_wsgi writes the daemons'
        # display-name over argv[0] and cuts it to that length
        [shutil.which("apache2") or "/usr/sbin/apache2", "-f", str(conf), "-DFOREGROUND"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=environment,
        start_new_session=True,
    )
    origin = f"http://127.0.0.1:{port}"

    def log():
        path = server_root / "error_log"
        return path.read_text(errors="replace")[-8000:] if path.exists() else "(no error_log)"

    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"apache2 exited:\n{log()}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(origin + "/gateway/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the gateway did not become healthy:\n{log()}"
            time.sleep(0.2)
        yield types.SimpleNamespace(origin=origin, pid=process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        for path in sorted(server_root.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        server_root.rmdir()


def admin_key():
    """The key the gateway wrote into var/api-keys on its first start (production.ini)."""
    for line in (ROOT / "var" / "api-keys").read_text().splitlines():
        words = line.split()
        if words and words[0] == "admin":
            return words[1]
    raise AssertionError("no admin key in var/api-keys")


def test_health_and_openapi_under_gateway(apache):
    health = requests.get(apache.origin + "/gateway/health", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"broker": "ok"}
    document = requests.get(apache.origin + "/gateway/openapi.json", timeout=10).json()
    assert document["servers"][0]["url"].endswith("/gateway")


def test_daemons_run_as_www_data_under_their_display_name(apache):
    processes = subprocess.run(
        ["ps", "--ppid", str(apache.pid), "-o", "user=,args="], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    daemons = [line.split(None, 1) for line in processes if "(wsgi:hutch)" in line]
    assert len(daemons) == 2  # processes=2
    assert {user for user, _ in daemons} == {"www-data"}


def test_only_the_gateway_is_served(apache):
    for path in ("/gateway.wsgi", "/production.ini", "/apps/broadcast.py", "/var/session.secret", "/"):
        response = requests.get(apache.origin + path, timeout=10)
        assert response.status_code in (403, 404), path
        assert b"[app:main]" not in response.content


def test_api_keys_pass_through_apache(apache):
    exchange = amqp.unique("apache")
    url = f"{apache.origin}/gateway/broadcast/{exchange}"
    try:
        assert_error(requests.post(url, data=b"x", timeout=10), 401, "unauthorized")
        headers = {"Authorization": f"Bearer {admin_key()}"}
        with amqp.BoundQueue(exchange) as consumer:
            response = requests.post(url, data=b"through apache", headers=headers, timeout=10)
            assert response.status_code == 202, response.text
            assert response.json()["routed"] is True
            assert consumer.get()[2] == b"through apache"
    finally:
        amqp.delete(exchanges=[exchange])


def test_body_limits_under_apache(apache):
    headers = {"Authorization": f"Bearer {admin_key()}"}
    url = f"{apache.origin}/gateway/broadcast/{amqp.unique('apache')}"
    # between max_body_bytes and LimitRequestBody: the gateway's JSON 413
    too_large = requests.post(url, data=b"x" * (1048576 + 1), headers=headers, timeout=30)
    assert_error(too_large, 413, "payload_too_large")
    # far above LimitRequestBody: Apache refuses before the daemon reads it, in the contract's JSON
    refused = requests.post(url, data=b"x" * (3 * 1048576), headers=headers, timeout=30)
    assert_error(refused, 413, "payload_too_large")
    assert refused.json()["detail"] == STATIC_ERRORS[413].detail


def test_trace_is_refused_with_the_routes_allow(apache):
    for path, allow in [("/gateway/health", "GET, HEAD"), ("/gateway/broadcast/x", "POST")]:
        response = requests.request("TRACE", apache.origin + path, headers={"X-Secret": "s"}, timeout=10)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"] == allow
        assert "X-Secret" not in response.text  # nothing echoed


def test_a_malformed_header_gets_the_contracts_json(apache):
    with socket.create_connection(("127.0.0.1", int(apache.origin.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"GET /gateway/health HTTP/1.1\r\nHost: x\r\nX-Amqp-Header-{Name}: v\r\n\r\n")
        received = b""
        while b"}" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"application/json" in head.lower()
    assert json.loads(body.split(b"\n", 1)[0])["error"] == "bad_request"
