"""mod_wsgi-express servers for the benchmark, all started with the same flags.

Every command line is ``hutch.serve.plan.serve_arguments`` (what ``hutch serve``
runs) with only the WSGI script swapped, so hello-world and the naive app get
exactly the gateway's Apache and daemon settings: 2 processes x 10 threads,
mount point ``/gateway``, ``--log-level warn``, no access log.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

from harness.server import ExpressProcess, children_of, free_port
from hutch.serve import cli, plan

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
PROCESSES = 2
THREADS = 10
MOUNT_POINT = "/gateway"


def express_arguments(script, port, server_root, python_path, ini):
    """The mod_wsgi-express arguments ``hutch serve --ini INI`` would run, for any WSGI script."""
    flags = {
        "--ini": ini,
        "--host": "127.0.0.1",
        "--port": port,
        "--mount-point": MOUNT_POINT,
        "--processes": PROCESSES,
        "--threads": THREADS,
        "--server-root": server_root,
    }
    args = cli.parse(["serve", *(str(item) for pair in flags.items() for item in pair)])
    # Set here: ``hutch serve`` cannot take extra flags that start with "--" (see BENCHMARKS.md).
    args.extra = ["--log-level", "warn", "--python-path", str(python_path)]
    command, _ini = plan.prepare(args, os.geteuid() == 0)  # no event servers: these serve WSGI only
    command[command.index(str(plan.ROOT / "gateway.wsgi"))] = str(script)
    # mod_wsgi puts the working directory first on sys.path: it decides which ``hutch`` is imported.
    command[command.index("--working-directory") + 1] = str(python_path)
    return command


class Server(ExpressProcess):
    """One mod_wsgi-express instance serving ``script`` until ``stop``."""

    def __init__(self, name, script, ready_path, ini, python_path=ROOT, environ=None):
        self.name = name
        self.script = pathlib.Path(script)
        self.ready_path = ready_path
        self.environ = dict(environ or {})
        self.port = free_port()
        self.server_root = pathlib.Path(tempfile.mkdtemp(prefix=f"hutch-bench-{name}-"))
        os.chmod(self.server_root, 0o755)
        self.arguments = express_arguments(self.script, self.port, self.server_root, python_path, ini)
        self.process = None
        self.log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{MOUNT_POINT}"

    def start(self, timeout=60):
        express = pathlib.Path(sys.executable).with_name("mod_wsgi-express")
        return self.launch(
            [str(express), *self.arguments], {**os.environ, **self.environ}, self.ready_path, timeout
        )

    def _children(self):
        """The Apache parent's pid, and (pid, is a mod_wsgi daemon) for each of its children."""
        parent = int((self.server_root / "httpd.pid").read_text())
        return parent, children_of(parent)

    def daemon_pids(self):
        """The mod_wsgi daemon processes: the Apache parent's children named ``(wsgi:...)``."""
        _, children = self._children()
        return sorted(pid for pid, daemon in children if daemon)

    def apache_pids(self):
        """Apache itself: the parent and its worker processes (not the daemons)."""
        parent, children = self._children()
        return sorted([parent, *(pid for pid, daemon in children if not daemon)])

    def loaded_from(self):
        """Where the daemons import ``hutch`` from, read off their AMQP I/O thread by py-spy."""
        py_spy = pathlib.Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():
            return None
        for pid in self.daemon_pids():
            dump = subprocess.run(
                [str(py_spy), "dump", "--full-filenames", "--pid", str(pid)],
                capture_output=True, text=True, timeout=60, check=False,
            ).stdout  # fmt: skip
            for line in dump.splitlines():
                if "Broker._run (" in line:
                    return line.split("(", 1)[1].split("/hutch/amqp/", 1)[0]
        return None

    def logs(self, tail=5000):
        return super().logs(tail)


def write_gateway_ini(directory, gateway_root=ROOT):
    """bench/gateway.ini with the apps and templates of ``gateway_root`` (maybe a scratch copy)."""
    ini = pathlib.Path(directory) / "gateway.ini"
    text = (BENCH / "gateway.ini").read_text().replace("%(here)s/..", str(gateway_root))
    ini.write_text(text)
    ini.chmod(0o644)
    return ini


def gateway_server(ini, gateway_root=ROOT):
    """Hutch as ``hutch serve --ini INI`` runs it; ``gateway_root`` may be a scratch copy of the repo."""
    gateway_root = pathlib.Path(gateway_root).resolve()
    return Server(
        "hutch",
        gateway_root / "gateway.wsgi",
        "/health",
        ini,
        python_path=gateway_root,
        environ={"HUTCH_INI": str(ini)},
    )


def parts_server(part, ini, gateway_root=ROOT):
    """bench/apps/parts.wsgi: Hutch with its AMQP work taken out (``part``: stack or handoff)."""
    gateway_root = pathlib.Path(gateway_root).resolve()
    return Server(
        part,
        BENCH / "apps" / "parts.wsgi",
        "/health",
        ini,
        python_path=gateway_root,
        environ={"HUTCH_INI": str(ini), "HUTCH_BENCH_PART": part},
    )


def hello_server(ini, gateway_root=ROOT):
    return Server("hello", BENCH / "apps" / "hello.wsgi", "/", ini, python_path=gateway_root)


def naive_server(ini, gateway_root=ROOT):
    return Server("naive", BENCH / "apps" / "naive.wsgi", "/", ini, python_path=gateway_root)


def threadlocal_server(ini, gateway_root=ROOT):
    return Server("threadlocal", BENCH / "apps" / "threadlocal.wsgi", "/", ini, python_path=gateway_root)
