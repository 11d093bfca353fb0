"""Redis for the idempotency tests: the shared server (own db, own keys) and private servers.

The shared Redis on 127.0.0.1:6379 carries other people's data: tests use
their own database number, only delete the keys of the exchanges they made
(never FLUSH), and start a private ``redis-server`` for anything that stops it.
"""

import contextlib
import pathlib
import shutil
import subprocess
import tempfile
import time

import redis

from tests.support.server import free_port

SHARED_URL = "redis://127.0.0.1:6379/11"  # the tests' own database on the shared server
KEY_PREFIX = "hutch:idempotency:"
START_TIMEOUT = 20.0


def shared():
    return redis.Redis.from_url(SHARED_URL, socket_timeout=5, decode_responses=True)


def forget_exchanges(client, *exchanges):
    """Delete the idempotency keys of these exchanges (and only those) from ``client``'s database."""
    for exchange in exchanges:
        for key in client.scan_iter(match=f"{KEY_PREFIX}*/{exchange}/*", count=500):
            client.delete(key)


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, no persistence; stop and start it at will."""

    def __init__(self):
        self.port = free_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="hutch-redis-"))
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s: {self.log()}")

    def stop(self):
        """Terminate our server (by its pid) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self):
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
