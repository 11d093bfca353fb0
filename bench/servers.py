"""The servers a run loads, all with the same flags, and the inis they serve.

An ``express`` server is mod_wsgi-express with the command line ``hutch serve
--ini INI`` builds (``hutch.serve.plan.prepare``), only the WSGI script swapped, so
hello-world and the naive app get exactly the gateway's Apache and daemon
settings: 2 processes x 10 threads, mount point ``/gateway``, ``--log-level
warn``, no access log, no event servers.  A ``serve`` server is ``hutch serve``
itself (event servers and front included), as a deployment runs it.
"""

import hashlib
import os
import pathlib
import re
import shutil
import sys
import tempfile

from harness.server import ExpressProcess, children_of, free_port
from hutch.serve import cli, plan

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
PROCESSES, THREADS = 2, 10  # every server's; bench/run --processes/--threads change them alike
MOUNT_POINT = "/gateway"
HISTORY = ("events_history", "events_history_count", "events_history_max_age", "events_history_max_bytes")
API_KEY = "bench-only-api-key-0123456789abcdef"  # bench/gateway.ini's key
BEARER = f"Bearer {API_KEY}"
# The apps an express server may serve: (WSGI script, None: the tree's gateway.wsgi; the path that
# answers once it is up; its environment beside HUTCH_INI).
APPS = {
    "hutch": (None, "/health", {}),
    "hello": (BENCH / "apps" / "hello.wsgi", "/", {}),  # reads the body, answers 200
    "naive": (BENCH / "apps" / "naive.wsgi", "/", {}),  # a pika connection per request
    "threadlocal": (BENCH / "apps" / "threadlocal.wsgi", "/", {}),  # a pika connection per thread
    "stack": (BENCH / "apps" / "parts.wsgi", "/health", {"HUTCH_BENCH_PART": "stack"}),
    "handoff": (BENCH / "apps" / "parts.wsgi", "/health", {"HUTCH_BENCH_PART": "handoff"}),
}


def private_directory(prefix):
    directory = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(directory, 0o755)  # the daemons (www-data) read the ini in it
    return directory


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
    """One mod_wsgi-express instance serving ``app`` (a name in APPS) of ``root`` until ``stop``."""

    def __init__(self, name, app, ini, root=ROOT):
        root = pathlib.Path(root).resolve()
        script, self.ready_path, environ = APPS[app]
        self.name, self.script = name, pathlib.Path(script or root / "gateway.wsgi")
        self.environ = {"HUTCH_INI": str(ini), **environ}
        self.port = free_port()
        self.server_root = private_directory(f"hutch-bench-{name}-")
        self.arguments = express_arguments(self.script, self.port, self.server_root, root, ini)
        # ``prepare`` exports its server root's metrics folder into this process: each server its own.
        self.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.server_root / "metrics")
        self.process = self.log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{MOUNT_POINT}"

    def start(self, timeout=60):
        express = pathlib.Path(sys.executable).with_name("mod_wsgi-express")
        command = [str(express), *self.arguments]
        return self.launch(command, {**os.environ, **self.environ}, self.ready_path, timeout)

    def _children(self):
        parent = int((self.server_root / "httpd.pid").read_text())
        return parent, children_of(parent)

    def daemon_pids(self):
        """The mod_wsgi daemon processes: the Apache parent's children named ``(wsgi:...)``."""
        return sorted(pid for pid, daemon in self._children()[1] if daemon)

    def apache_pids(self):
        """Apache itself: the parent and its worker processes (not the daemons)."""
        parent, children = self._children()
        return sorted([parent, *(pid for pid, daemon in children if not daemon)])


def gateway_ini(directory, root=ROOT):
    """bench/gateway.ini with the apps and templates of ``root`` (maybe another checkout)."""
    ini = pathlib.Path(directory) / f"gateway-{abs(hash(str(root)))}.ini"
    ini.write_text((BENCH / "gateway.ini").read_text().replace("%(here)s/..", str(root)))
    ini.chmod(0o644)
    return ini


def production_ini(directory, name, drop=()):
    """production.ini (less the settings in ``drop``) with its var/ files in ``directory``: an API
    key file holding the bench's key, owned by the daemons' user."""
    var = pathlib.Path(directory) / f"var-{name}"
    var.mkdir()
    text = (ROOT / "production.ini").read_text().replace("%(here)s/var/", f"{var}/")
    apps = f"apps_directory = {ROOT}/apps\ntemplates_directory = {ROOT}/templates\n"
    text = text.replace("[app:main]\n", "[app:main]\n" + apps, 1)
    for key in drop:
        text = re.sub(rf"^{re.escape(key)} = .*\n", "", text, flags=re.MULTILINE)
    ini = var.parent / f"{name}.ini"
    ini.write_text(text)
    ini.chmod(0o644)
    keys = var / "api-keys"
    keys.write_text(f"bench sha256:{hashlib.sha256(API_KEY.encode()).hexdigest()} *\n")
    keys.chmod(0o600)  # the gateway refuses a key file others may read
    if os.geteuid() == 0:  # the daemons run as the default user: the key file and the secret are theirs
        shutil.chown(var, plan.DEFAULT_USER)
        shutil.chown(keys, plan.DEFAULT_USER)
    return ini
