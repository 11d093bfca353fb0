"""What every suite measures with: wrk, and /proc (CPU, context switches, RSS, process trees).

``run_wrk`` POSTs a body with ``wrk -t1 --latency -s lua/post.lua`` and reads the one JSON line
the script prints.  ``Meter`` reads utime + stime of named process groups (the gateway's daemons,
Apache, the RabbitMQ node on 5672, the responders; ``wrk``: this process's children) before and
after a load: where a scenario's cost lands.  On 2 shared cores that decides the ratios.
"""

import dataclasses
import importlib.metadata
import json
import os
import pathlib
import platform
import resource
import subprocess

import pika

LUA = pathlib.Path(__file__).resolve().parent / "lua" / "post.lua"
BODY = '{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'
CONTENT_TYPE = "application/json"
TICK = os.sysconf("SC_CLK_TCK")
ERRORS = (("connect", "connect_errors"), ("read", "read_errors"), ("write", "write_errors"),
          ("status", "status_errors"), ("timeout", "timeouts"))  # fmt: skip


@dataclasses.dataclass
class Load:
    """One wrk run's figures."""

    url: str
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float = 0
    p90_ms: float = 0
    p99_ms: float = 0
    mean_ms: float = 0
    errors: dict = dataclasses.field(default_factory=lambda: {name: 0 for name, _ in ERRORS})
    cpu_ms: dict = dataclasses.field(default_factory=dict)  # CPU ms per request by process group
    daemon_switches: float | None = None  # the gateway daemons' context switches per request

    @property
    def failed(self):
        """Requests that did not get a 2xx/3xx answer, or broke the connection."""
        return self.errors["status"] + self.errors["timeout"] + self.errors["connect"]


def run_wrk(url, connections, seconds, authorization="", body=BODY, content_type=CONTENT_TYPE, body_file=""):
    """``wrk -t1 -c{connections} -d{seconds}s --latency -s post.lua url``."""
    environ = {**os.environ, "BENCH_BODY": body, "BENCH_BODY_FILE": str(body_file)}
    environ.update(BENCH_CONTENT_TYPE=content_type, BENCH_AUTHORIZATION=authorization)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
    ]
    result = subprocess.run(
        [*command, url], env=environ, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    figures = json.loads(line.split(" ", 1)[1])
    duration, ms = (
        figures["duration_us"] / 1e6,
        {k: figures[f"{k}_us"] / 1000 for k in ("p50", "p90", "p99", "mean")},
    )
    rate, errors = round(figures["requests"] / duration, 1), {name: figures[key] for name, key in ERRORS}
    return Load(url, connections, round(duration, 3), figures["requests"], rate, *ms.values(), errors)


# --- /proc ------------------------------------------------------------------------------------


def _stat(pid):
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def cpu_total(pids):
    return sum(cpu_seconds(pid) for pid in pids)


def _status_field(path, *names):
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError:  # the process or thread ended meanwhile
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(names))


def context_switches(pid):
    """Voluntary and involuntary context switches of every thread of ``pid`` so far."""
    try:
        tasks = list(pathlib.Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    return sum(
        _status_field(task / "status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
        for task in tasks
    )


def rss_kib(pids):
    return sum(_status_field(f"/proc/{pid}/status", "VmRSS:") for pid in pids)


def _processes():
    """{pid: (parent, session, comm)} of every process now."""
    found = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields, comm = _stat(entry.name), (entry / "comm").read_text().strip()
            except OSError:
                continue
            found[int(entry.name)] = (int(fields[1]), int(fields[3]), comm)
    return found


def session_pids(leader):
    """``leader`` and every process in its session or below it: the whole gateway, however
    ``hutch serve`` starts its parts (Apache, mod_wsgi daemons, event servers, HAProxy)."""
    processes = _processes()
    found = {pid for pid, (_, session, _) in processes.items() if session == leader} | {leader}
    while below := {pid for pid, (parent, _, _) in processes.items() if parent in found} - found:
        found |= below
    return sorted(pid for pid in found if pid in processes)


def broker_pids(port=5672):
    """The RabbitMQ node listening on ``port`` (teammates may run private nodes beside it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in (line.split() for line in lines):
            if fields[1].rsplit(":", 1)[1] == f"{port:04X}" and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid, (_, _, comm) in _processes().items():
        if comm == "beam.smp":
            try:
                if any(os.readlink(fd) in inodes for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir()):
                    return [pid]
            except OSError:
                continue
    return []


class Meter:
    """``groups`` maps a name to a function returning that group's pids now."""

    def __init__(self, groups):
        self.groups = groups

    def snapshot(self):
        taken = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        taken["wrk"] = {0: usage.ru_utime + usage.ru_stime}
        return taken

    def daemon_switches(self):
        """{pid: context switches so far} of the gateway's daemons ({} where there are none)."""
        pids = self.groups.get("daemons")
        return {pid: context_switches(pid) for pid in pids()} if pids else {}

    @staticmethod
    def switches_per_request(before, after, requests):
        if not after:
            return None
        spent = sum(count - before[pid] for pid, count in after.items() if pid in before)
        return round(spent / max(requests, 1), 2)

    @staticmethod
    def per_request_ms(before, after, requests):
        """CPU ms per request of each group between two snapshots (pids present in both)."""
        return {
            name: round(sum(s - before[name][pid] for pid, s in now.items() if pid in before[name]) * 1000
                        / max(requests, 1), 3)
            for name, now in after.items()
        }  # fmt: skip

    def around(self, load, requests=lambda figures: figures.requests):
        """Run ``load()``; its figures with ``cpu_ms`` per request (``requests(figures)`` of them) and
        ``daemon_switches``."""
        before, switches = self.snapshot(), self.daemon_switches()
        figures = load()
        count = requests(figures)
        figures.cpu_ms = self.per_request_ms(before, self.snapshot(), count)
        figures.daemon_switches = self.switches_per_request(switches, self.daemon_switches(), count)
        return figures


# --- the machine ------------------------------------------------------------------------------


def _command(*argv):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def describe(root, rabbitmq_version=None):
    """What the figures were measured on, written beside them."""
    cpu = next(
        (line for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), ""
    )
    memory = int(pathlib.Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu.split(":", 1)[-1].strip() or platform.processor(),
        "memory_gib": round(memory / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mod_wsgi": importlib.metadata.version("mod_wsgi"),
        "apache": (_command("/usr/sbin/apache2", "-v").splitlines() or [""])[0].split(":", 1)[-1].strip(),
        "pika": pika.__version__,
        "rabbitmq": rabbitmq_version,
        "wrk": (_command("wrk", "-v").splitlines() or [""])[0],
        "load_average": os.getloadavg(),
        "git_commit": _command("git", "-C", str(root), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_command("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")),
    }
