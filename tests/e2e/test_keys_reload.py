"""A running gateway (mod_wsgi-express, 2 processes) honours ``hutch keys add``/``revoke`` within 5 s."""

import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from harness.server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ROOT = pathlib.Path(__file__).resolve().parents[2]
HUTCH = pathlib.Path(sys.executable).with_name("hutch")
HONOURED_WITHIN = 5.0  # seconds, the promise
REQUESTS = 20  # at once: more than one process's threads, so both processes answer

INI = f"""\
[app:main]
use = egg:hutch
apps_directory = {ROOT}/apps
templates_directory = {ROOT}/templates
amqp_url = amqp://guest:guest@127.0.0.1:5672/%%2F
session.secret = keys-reload-tests-secret-0123456789abcdef
auth = keys
auth.key_file = %(here)s/var/api-keys
"""


@pytest.fixture(scope="module")
def served():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="hutch-keys-"))
    os.chmod(folder, 0o755)  # the daemon user reads the ini
    ini = folder / "gateway.ini"
    ini.write_text(INI)
    server = GatewayServer(ini, processes=2, threads=10)
    server.start()
    try:
        yield server, ini
    finally:
        server.stop()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def keys(ini, *argv):
    result = subprocess.run(
        [str(HUTCH), "keys", *argv, "--ini", str(ini)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def statuses(server, secret):
    def scrape(_):
        headers = {"Authorization": f"Bearer {secret}"}
        return requests.get(server.url + "/metrics", headers=headers, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(REQUESTS) as pool:
        return set(pool.map(scrape, range(REQUESTS)))


def wait_for(server, secret, status, since):
    """Seconds until one request gets ``status``; then, past the promise, every request must."""
    while statuses(server, secret) != {status}:
        assert time.monotonic() - since < HONOURED_WITHIN, f"not {status} within {HONOURED_WITHIN} s"
        time.sleep(0.1)
    seen = time.monotonic() - since
    time.sleep(max(0.0, since + HONOURED_WITHIN - time.monotonic()))
    assert statuses(server, secret) == {status}
    return seen


def test_an_added_key_works_and_a_revoked_one_stops_without_a_restart(served):
    server, ini = served
    added = time.monotonic()
    secret = keys(ini, "add", "scraper", "metrics")
    assert statuses(server, "not-yet-a-key-0123456789") == {401}
    wait_for(server, secret, 200, added)
    revoked = time.monotonic()
    keys(ini, "revoke", "scraper")
    wait_for(server, secret, 401, revoked)
    listed = keys(ini, "list")
    assert "admin" in listed and "scraper" not in listed


def stream_status(server, secret, exchange):
    """What the event servers answer a key for ``exchange``'s stream (HEAD: no stream is held)."""
    headers = {"Authorization": f"Bearer {secret}"}
    return requests.head(f"{server.url}/events/{exchange}", headers=headers, timeout=30).status_code


def test_the_event_servers_honour_added_and_revoked_keys_too(served):
    """The event servers are processes of their own; they read the same key file, as live."""
    server, ini = served
    exchange = f"t.keys.{os.getpid()}"
    added = time.monotonic()
    secret = keys(ini, "add", "viewer", "watch:t.keys.*")
    while stream_status(server, secret, exchange) != 200:
        assert time.monotonic() - added < HONOURED_WITHIN, "the event servers did not take the new key"
        time.sleep(0.1)
    revoked = time.monotonic()
    keys(ini, "revoke", "viewer")
    while stream_status(server, secret, exchange) != 401:
        assert time.monotonic() - revoked < HONOURED_WITHIN, "the event servers still take a revoked key"
        time.sleep(0.1)
    # past the promise, both event-server processes refuse it: every request of a burst
    time.sleep(max(0.0, revoked + HONOURED_WITHIN - time.monotonic()))
    assert {stream_status(server, secret, exchange) for _ in range(10)} == {401}
