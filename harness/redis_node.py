"""A private redis-server for tests that stop and start Redis: its own port and data dir."""

import contextlib
import pathlib
import subprocess
import tempfile
import time

import redis

from .process import ScratchProcess, terminate
from .server import free_port


class PrivateRedis(ScratchProcess):
    """``redis-server`` on a free loopback port, in a temporary dir.

    ``persistent`` turns the append-only file on (fsync always), so data
    survives ``stop()``/``start()`` as it does for a production Redis
    restarted cleanly; without it a restart loses everything.
    """

    def __init__(self, persistent=True):
        self.port = free_port()
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-redis-"))
        self.persistent = persistent
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def command(self):
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            *persistence,
        ]  # fmt: skip

    def start(self, timeout=20):
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout} s: {self.log()}")

    def stop(self):
        """SIGTERM (Redis writes what it must and exits), SIGKILL if it hangs; by pid only."""
        terminate(self.process, timeout=15)
        self.process = None

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def log(self):
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
