"""Start the gateway under mod_wsgi-express for end-to-end tests and benchmarks."""

import contextlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(parent):
    """(pid, is a mod_wsgi daemon) for each child of ``parent``, read from /proc (never by name)."""
    children = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            children.append((int(entry.name), cmdline.startswith(b"(wsgi:")))
    return children


class ExpressProcess:
    """A running mod_wsgi-express: its server root, its console log, and how to stop it.

    Subclasses set ``server_root``, ``process`` (the Popen) and ``log`` (its open console log).
    """

    def launch(self, command, environment, ready_path, timeout):
        """Start ``command`` in its own session, logging to the server root; wait until
        ``ready_path`` answers 200 (bounded: the log is in the error when it does not)."""
        self.log = open(self.server_root / "console.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=environment,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command[0]} exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if requests.get(self.url + ready_path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.url} did not become ready in {timeout} s:\n{self.logs()}")

    def logs(self, tail=20000):
        text = []
        for name in ("console.log", "error_log"):
            path = self.server_root / name
            if path.exists():
                text.append(f"--- {name}\n" + path.read_text(errors="replace")[-tail:])
        return "\n".join(text)

    def stop(self):
        """Stop Apache and its daemons: apachectl first, then the process group."""
        if self.process is not None and self.process.poll() is None:
            apachectl = self.server_root / "apachectl"
            if apachectl.exists():
                with contextlib.suppress(subprocess.SubprocessError):
                    subprocess.run([str(apachectl), "stop"], capture_output=True, timeout=30)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self):
        shutil.rmtree(self.server_root, ignore_errors=True)


class GatewayServer(ExpressProcess):
    """mod_wsgi-express (daemon mode) serving ``gateway.wsgi`` with ``ini``.

    Started through ``hutch serve`` so the tests exercise the same command
    line that users run.  ``ini=None`` passes no ``--ini`` and no
    ``HUTCH_INI``: the gateway then serves ``production.ini`` exactly as
    under Apache.  ``prefix`` is the mount point ("" mounts at the root).
    """

    def __init__(self, ini, prefix="/gateway", processes=2, threads=10, extra_args=()):
        self.ini = pathlib.Path(ini) if ini is not None else None
        self.prefix = prefix.rstrip("/")
        self.processes = processes
        self.threads = threads
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.server_root = pathlib.Path(tempfile.mkdtemp(prefix="hutch-e2e-"))
        os.chmod(self.server_root, 0o755)  # the daemon user reads the generated handler
        self.process = None
        self.log = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self):
        return self.origin + self.prefix

    def command(self):
        ini = ["--ini", str(self.ini)] if self.ini is not None else []
        return [
            str(pathlib.Path(sys.executable).with_name("hutch")),
            "serve",
            *ini,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--mount-point", self.prefix or "/",
            "--processes", str(self.processes),
            "--threads", str(self.threads),
            "--server-root", str(self.server_root),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout=60):
        environment = dict(os.environ)
        environment.pop("HUTCH_INI", None)
        return self.launch(self.command(), environment, "/health", timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


ROOT = pathlib.Path(__file__).resolve().parents[1]


def gateway_ini(template, amqp_urls, settings=None):
    """``template`` (an ini beside its tests, paths relative to the checkout) made absolute, with
    the broker's node URLs and more ``settings``, in a new directory the daemon user can read."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-ini-"))
    os.chmod(directory, 0o755)
    text = pathlib.Path(template).read_text().replace("%(here)s/../..", str(ROOT))
    urls = [amqp_urls] if isinstance(amqp_urls, str) else list(amqp_urls)
    line = "amqp_url = " + " ".join(url.replace("%", "%%") for url in urls)
    line += "".join(f"\n{key} = {value}" for key, value in (settings or {}).items())
    text = re.sub(r"^amqp_url = .*$", lambda _match: line, text, count=1, flags=re.MULTILINE)
    path = directory / "gateway.ini"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


HUTCH_LINES = 150  # of the gateway's own log lines printed when a test failed


@contextlib.contextmanager
def running_gateway(request, ini, log_tail=8000, always_log=False, **server_options):
    """A gateway on ``ini`` (removed afterwards with its directory); its log is printed when a
    test failed while it ran, or always with ``always_log``."""
    server = GatewayServer(ini, **server_options)
    failures = request.session.testsfailed
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failures or always_log:
            logs = server.logs(tail=10**7)
            # Hutch's own lines first (its decisions: connections lost and opened, channels closed),
            # then the raw tail, where the broker client's tracebacks take most of the room
            own = [line for line in logs.splitlines() if " [hutch." in line]
            print(f"\n=== gateway log, Hutch's lines ({server.url})\n" + "\n".join(own[-HUTCH_LINES:]))
            print(f"\n=== gateway log ({server.url})\n{logs[-log_tail:]}")
        server.cleanup()
        shutil.rmtree(pathlib.Path(ini).parent, ignore_errors=True)
