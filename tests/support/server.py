"""Start the gateway under mod_wsgi-express for end-to-end tests and benchmarks."""

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayServer:
    """mod_wsgi-express (daemon mode) serving ``gateway.wsgi`` with ``ini``.

    Started through ``hutch serve`` so the tests exercise the same command
    line that users run.
    """

    def __init__(self, ini, prefix="/gateway", processes=2, threads=10, extra_args=()):
        self.ini = pathlib.Path(ini)
        self.prefix = prefix
        self.processes = processes
        self.threads = threads
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.server_root = pathlib.Path(tempfile.mkdtemp(prefix="hutch-e2e-"))
        os.chmod(self.server_root, 0o755)
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self, timeout=60):
        command = [
            str(pathlib.Path(sys.executable).with_name("hutch")),
            "serve",
            "--ini", str(self.ini),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--mount-point", self.prefix,
            "--processes", str(self.processes),
            "--threads", str(self.threads),
            "--server-root", str(self.server_root),
            *self.extra_args,
        ]  # fmt: skip
        self.log = open(self.server_root / "console.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mod_wsgi-express exited:\n{self.logs()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the gateway did not become healthy:\n{self.logs()}")

    def logs(self):
        text = []
        for name in ("console.log", "error_log"):
            path = self.server_root / name
            if path.exists():
                text.append(f"--- {name}\n" + path.read_text(errors="replace")[-20000:])
        return "\n".join(text)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            apachectl = self.server_root / "apachectl"
            if apachectl.exists():
                subprocess.run([str(apachectl), "stop"], capture_output=True, timeout=30)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=5)
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self):
        shutil.rmtree(self.server_root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
