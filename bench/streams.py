"""Event streams: 1,000, 5,000 and 10,000 concurrent SSE streams on one host, in one run.

    .venv/bin/python -m bench.streams [--counts 1000,5000,10000] [--roots this,apache]
                                      [--compare-root PATH]

For each count, and for this checkout as ``hutch serve`` serves it by default
(``this``), with ``--front apache`` (``apache``: Apache proxies the streams,
a worker thread each), (``--compare-root``) another checkout, and
(``--roots ...,direct,compare-direct``) a checkout with its streams opened
on the event servers' own port (the event tier without the front proxy in
between), it
starts that checkout's gateway with its own ``hutch serve`` (own venv,
own apps and templates, a fresh server root, RLIMIT_NOFILE raised for the
server too), opens the streams from a few client processes
(``bench/sse_clients.py``: bare asyncio protocols, one loopback source
address each), broadcasts warm-up messages until every accepted stream receives one
(so every server process consumes the exchange), then broadcasts
``--messages`` messages through ``POST /broadcast/{exchange}``, each once the
one before has reached every stream and at least ``--interval`` seconds after
it (``--overlap``: every ``--interval`` seconds regardless, a steady rate),
and stops the gateway.  Reported per scenario:

- accepted: streams answered 200 (a 503 is tried again, up to 5 times, as a browser would);
- POST p50/p99: ``--probes`` broadcasts (``POST /broadcast/{exchange}``, one every
  ``PROBE_INTERVAL`` s) before any stream is open, and the same while the
  crowd is open (each then reaches every stream);
- lost: deliveries (accepted streams x messages) that had not arrived 30 s
  (``DELIVERY_TIMEOUT``) after the last publish; streams the server closed
  are counted apart;
- reach-all p50/p99: per message, the time from just before its POST is sent
  to the moment the last stream has it (the HTTP publish, RabbitMQ, the
  fan-out, the proxy, the client's read); per delivery too;
- RSS: the sum of VmRSS of every server process (all processes in the
  gateway's session: Apache, mod_wsgi daemons, event servers) idle and with
  the streams; per 1,000 streams is the growth over idle;
- CPU per delivery: utime + stime of the server processes during the
  broadcasts over the deliveries; RabbitMQ's (the node on 5672) per message.

Loopback only, bounded: at most ``max(counts)`` streams, each step under a
timeout, every server stopped at the end.  Before each scenario it waits (at
most ``--settle`` seconds) for the 1-minute load average to drop under
``--quiet-load``, and records the load it started with: the machine is shared.

``measure(url, authorization)`` runs one small scenario against a gateway
that is already up (bench/runner.py calls it with its own gateway).
"""

import argparse
import configparser
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import profiling  # noqa: E402
from bench.cpu import broker_pids, cpu_seconds  # noqa: E402
from bench.sse_clients import ClientPool, raise_open_files_limit, token  # noqa: E402
from harness import amqp  # noqa: E402
from harness import rabbitmqctl as broker  # noqa: E402 - the repository's own helpers
from harness.server import GatewayServer, free_port  # noqa: E402

API_KEY = "bench-streams-api-key-0123456789abcdef"
INI = """# Written by bench/streams.py: that checkout's production.ini event settings, one API key.
[app:main]
use = egg:hutch
amqp_url = amqp://guest:guest@127.0.0.1:5672/%%2F
apps_directory = {root}/apps
templates_directory = {root}/templates
session.secret = bench-streams-secret-0123456789abcdef-0123
auth = keys
auth.key.bench = {key}
auth.permissions.bench = *
{events}
"""
LIFETIME = "900"  # events_max_lifetime: no planned reconnect during a scenario
DEFAULT_COUNTS = (1000, 5000, 10000)
WARMUP_TIMEOUT = 90.0
WARMUP_FIRST = 1_000_000  # warm-up messages are numbered from here, apart from the measured ones
DELIVERY_TIMEOUT = 30.0  # seconds after the last broadcast a late delivery still counts
OPEN_ATTEMPTS = 5  # a 503 (that process is full) is tried again, as a browser would
PROCESSES = 2
PROBE_FIRST = 2_000_000  # probe broadcasts are numbered from here
PROBE_INTERVAL = 0.05  # seconds between probe broadcasts
MAX_THREADS = 4000  # per process, for a thread-per-stream gateway sized by "auto"


# --- the server processes ---------------------------------------------------


def server_pids(leader):
    """``leader`` and every process in its session or below it: the whole gateway, however
    ``hutch serve`` starts its parts (Apache, mod_wsgi daemons, event servers)."""
    parents, sessions = {}, {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            sessions[int(entry.name)] = int(fields[3])
    found = {pid for pid, session in sessions.items() if session == leader} | {leader}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return sorted(pid for pid in found if pid in parents)


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def pss_kib(pids):
    """Proportional set size: shared pages split between the processes that share them."""
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def kind_of(pid):
    """apache, mod_wsgi (a daemon), events (an event server), front (HAProxy), or other: where
    memory and CPU go."""
    try:
        command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if command.startswith(b"(wsgi:"):
        return "mod_wsgi"
    if command.split(b"\0", 1)[0].endswith(b"haproxy"):
        return "front"
    if b"hutch.events" in command or b"hutch\0events" in command:
        return "events"
    if b"apache2" in command or b"httpd" in command:
        return "apache"
    return "other"


def by_kind(pids, measure):
    """``measure(pids)`` of each kind of server process: {kind: (processes, value)}."""
    kinds = {}
    for pid in pids:
        kinds.setdefault(kind_of(pid), []).append(pid)
    return {kind: (len(members), measure(members)) for kind, members in sorted(kinds.items())}


def cpu_total(pids):
    return sum(cpu_seconds(pid) for pid in pids)


class CheckoutGateway(GatewayServer):
    """``hutch serve`` of the checkout at ``root``, with that checkout's own venv, apps and templates."""

    def __init__(self, root, ini, processes=PROCESSES, threads=None, extra_args=()):
        super().__init__(ini, prefix="/gateway", processes=processes, threads=threads, extra_args=extra_args)
        self.root = pathlib.Path(root).resolve()

    def command(self):
        command = super().command()
        command[0] = str(self.root / ".venv" / "bin" / "hutch")
        if self.threads is None:  # that checkout's own default
            index = command.index("--threads")
            del command[index : index + 2]
        return command

    def pids(self):
        return server_pids(self.process.pid)


def event_settings(root):
    """The ``events_*`` settings of ``root``'s production.ini (history, as in production), the
    lifetime raised above a scenario's length."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(pathlib.Path(root) / "production.ini")
    settings = {key: value for key, value in parser["app:main"].items() if key.startswith("events_")}
    settings["events_max_lifetime"] = LIFETIME
    return settings


def write_ini(directory, root):
    ini = pathlib.Path(directory) / f"streams-{uuid.uuid4().hex[:6]}.ini"
    events = "\n".join(f"{key} = {value}" for key, value in event_settings(root).items())
    ini.write_text(INI.format(root=pathlib.Path(root).resolve(), key=API_KEY, events=events))
    ini.chmod(0o644)
    return ini


def threads_for(setting, count, processes):
    """``serve``: the checkout's default; ``auto``: a thread per stream and a fifth spare; or a number."""
    if setting == "serve":
        return None
    if setting == "auto":
        return min(MAX_THREADS, math.ceil(1.1 * count / (0.8 * processes)) + 10)
    return int(setting)


# --- one scenario ------------------------------------------------------------


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def summary_ms(values):
    if not values:
        return None
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


class Publisher:
    """``POST /broadcast/{exchange}`` of a token message; the monotonic time just before it is sent."""

    def __init__(self, url, authorization, exchange, run):
        self.url = f"{url}/broadcast/{exchange}"
        self.run = run
        self.session = requests.Session()
        self.session.headers.update({"Authorization": authorization, "Content-Type": "text/plain"})
        self.round_trips = []

    def send(self, number):
        started = time.monotonic()
        answer = self.session.post(self.url, data=token(self.run, number), timeout=30)
        self.round_trips.append(time.monotonic() - started)
        if answer.status_code != 202 or not answer.json()["routed"]:
            raise RuntimeError(f"broadcast failed: {answer.status_code} {answer.text}")
        return started


def warm_up(pool, publisher):
    """Broadcast until one message reaches every stream still open: every server process consumes."""
    deadline = time.monotonic() + WARMUP_TIMEOUT
    number = WARMUP_FIRST
    while time.monotonic() < deadline:
        publisher.send(number)
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            has, still_open = pool.have(number)
            if still_open and has == still_open:
                return number - WARMUP_FIRST + 1
            time.sleep(0.25)
        number += 1
    raise RuntimeError(f"after {WARMUP_TIMEOUT} s of warm-up broadcasts not every stream receives them")


def wait_for_everyone(pool, number, deadline):
    """Until every open stream has message ``number`` (the arrival times are the clients' own)."""
    while time.monotonic() < deadline:
        has, still_open = pool.have(number)
        if has >= still_open:
            return
        time.sleep(0.02)


def probe_posts(publisher, probes, first):
    """``probes`` broadcasts, one every ``PROBE_INTERVAL`` s: their round trips (s)."""
    round_trips = []
    for number in range(first, first + probes):
        started = publisher.send(number)
        round_trips.append(publisher.round_trips[-1])
        pause = started + PROBE_INTERVAL - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return round_trips


def measure_streams(
    url,
    authorization,
    count,
    messages,
    interval,
    clients,
    server_pids=None,
    events_url=None,
    overlap=False,
    profile=0,
    probes=0,
):
    """Open ``count`` streams on ``url``'s gateway (or straight on ``events_url``, an event server's
    own address), broadcast ``messages`` through ``url``: the figures (a dict).  Each broadcast
    waits until the one before reached every stream, unless ``overlap`` (a steady rate instead)."""
    run = uuid.uuid4().hex[:8]
    exchange = f"bench.streams.{run}"
    pids = server_pids or list
    warm = requests.Session()
    for _ in range(20):  # load the app in the server processes before "idle" is read
        warm.get(f"{url}/health", timeout=30)
    rss_idle, pss_idle = rss_kib(pids()), pss_kib(pids())
    rss_kinds_idle = by_kind(pids(), rss_kib)
    quiet_posts, crowd_posts = [], []
    if probes:  # the same broadcasts with no stream open (history on: the exchange routes them)
        quiet_posts = probe_posts(Publisher(url, authorization, exchange, run), probes, PROBE_FIRST)
    started = time.monotonic()
    try:
        with ClientPool(f"{events_url or url}/events/{exchange}", authorization, run, size=clients) as pool:
            accepted = pool.open(count, attempts=OPEN_ATTEMPTS)
            open_seconds = time.monotonic() - started
            if not accepted:
                return {"streams": count, "accepted": 0, "report": pool.report([])}
            publisher = Publisher(url, authorization, exchange, run)
            warm_ups = warm_up(pool, publisher)
            if probes:  # while the crowd is open: each reaches every stream
                prober = Publisher(url, authorization, exchange, run)
                crowd_posts = probe_posts(prober, probes, PROBE_FIRST + probes)
                wait_for_everyone(pool, PROBE_FIRST + 2 * probes - 1, time.monotonic() + DELIVERY_TIMEOUT)
            rss_streams, pss_streams = rss_kib(pids()), pss_kib(pids())
            servers, broker = pids(), broker_pids()
            rss_kinds = by_kind(servers, rss_kib)
            cpu_kinds_before = by_kind(servers, cpu_total)
            cpu_before = (cpu_total(servers), cpu_total(broker), cpu_total(pool.pids))
            profilers = start_profilers(servers, profile) if profile else []
            published = {}
            for number in range(messages):
                published[number] = publisher.send(number)
                if not overlap:  # the next broadcast only once every stream has this one
                    wait_for_everyone(pool, number, published[number] + DELIVERY_TIMEOUT)
                pause = published[number] + interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while pool.missing(range(messages)) and time.monotonic() < deadline:
                time.sleep(0.25)
            cpu_after = (cpu_total(servers), cpu_total(broker), cpu_total(pool.pids))
            profiled = finish_profilers(profilers, profile)
            cpu_kinds_after = by_kind(servers, cpu_total)
            report = pool.report(range(messages))
    finally:
        delete_exchange(exchange)
    arrivals = report.pop("arrivals")
    accepted = report["accepted"]
    deliveries, reached_all, reached_first = [], [], []
    for number, sent in published.items():
        latencies = [moment - sent for moment in arrivals.get(number, ())]
        deliveries.extend(latencies)
        if latencies:
            reached_first.append(min(latencies))
        if len(latencies) == accepted:
            reached_all.append(max(latencies))
    delivered = len(deliveries)
    server_cpu, broker_cpu, client_cpu = (
        after - before for before, after in zip(cpu_before, cpu_after, strict=True)
    )
    return {
        "streams": count,
        "accepted": accepted,
        "open_s": round(open_seconds, 1),
        "closed_by_server": report["closed"],
        "statuses": report["statuses"],
        "errors": report["errors"],
        "warm_up_broadcasts": warm_ups,
        "messages": messages,
        "interval_s": interval,
        "overlap": overlap,
        "lost_deliveries": accepted * messages - delivered,
        "messages_reaching_all": len(reached_all),
        "reached_all": summary_ms(reached_all),
        "per_delivery": summary_ms(deliveries),
        "reached_first": summary_ms(reached_first),
        "publish_post": summary_ms(publisher.round_trips[warm_ups:]),
        "probe_post_no_crowd": summary_ms(quiet_posts),
        "probe_post_crowd_open": summary_ms(crowd_posts),
        "server_processes": len(servers),
        "server_rss_mib": {"idle": round(rss_idle / 1024, 1), "with_streams": round(rss_streams / 1024, 1)},
        "server_rss_mib_by_kind": {
            kind: {"processes": count, "mib": round(kib / 1024, 1)}
            for kind, (count, kib) in rss_kinds.items()
        },
        "server_rss_mib_idle_by_kind": {
            kind: {"processes": count, "mib": round(kib / 1024, 1)}
            for kind, (count, kib) in rss_kinds_idle.items()
        },
        "server_cpu_s_by_kind": {
            kind: round(seconds - cpu_kinds_before.get(kind, (0, 0.0))[1], 2)
            for kind, (_, seconds) in cpu_kinds_after.items()
        },
        "rss_mib_per_1000_streams": round((rss_streams - rss_idle) / 1024 / accepted * 1000, 1),
        "server_pss_mib": {"idle": round(pss_idle / 1024, 1), "with_streams": round(pss_streams / 1024, 1)},
        "pss_mib_per_1000_streams": round((pss_streams - pss_idle) / 1024 / accepted * 1000, 1),
        "server_cpu_ms_per_delivery": round(server_cpu * 1000 / max(delivered, 1), 4),
        "server_cpu_s": round(server_cpu, 2),
        "broker_cpu_ms_per_message": round(broker_cpu * 1000 / messages, 2),
        "client_cpu_ms_per_delivery": round(client_cpu * 1000 / max(delivered, 1), 4),
        **({"profile": profiling.summarize(profiled, delivered)} if profiled else {}),
    }


def start_profilers(pids, seconds):
    """py-spy on every event server for ``seconds`` (sampling without pausing them), raw stacks."""
    profilers = []
    for pid in pids:
        if kind_of(pid) != "events":
            continue
        output = pathlib.Path(tempfile.mkdtemp(prefix="hutch-profile-")) / f"{pid}.txt"
        command = [
            profiling.py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate",
            str(profiling.RATE), "--nonblocking", "--function", "--format", "raw", "--output", str(output),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        profilers.append((process, output))
    time.sleep(1)  # attached before the broadcasts start
    return profilers


def finish_profilers(profilers, seconds):
    """The raw stack files of the profilers that finished."""
    files = []
    for process, output in profilers:
        process.communicate(timeout=seconds + 60)
        if process.returncode == 0 and output.exists():
            files.append(output)
    return files


def delete_exchange(exchange):
    """The exchange, and the durable queues bound to it (an event tier's history stream); the
    servers' own exclusive queues go with their connections."""
    bound = broker.bound_queues(exchange)
    kept = [name for name, facts in broker.queue_facts(bound).items() if not facts["exclusive"]]
    amqp.delete(exchanges=[exchange], queues=kept)


def measure(url, authorization, streams=6, messages=40, interval=0.25, server_pids=None):
    """A small scenario against a gateway that is already up (bench/runner.py)."""
    return measure_streams(
        url, authorization, streams, messages, interval, clients=1, server_pids=server_pids
    )


# --- the run -------------------------------------------------------------------


def wait_for_quiet(threshold, longest):
    """Wait (at most ``longest`` s) for the 1-minute load average to drop under ``threshold``."""
    deadline = time.monotonic() + longest
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)
    return [round(value, 2) for value in os.getloadavg()]


def run_scenario(label, root, count, args, directory):
    """One gateway, one count: ``this``, ``compare`` (the other checkout), ``direct`` or
    ``compare-direct`` (that checkout, its streams opened on the event servers' own port: the same
    tier without a proxy in front)."""
    compare = label.startswith("compare")
    threads = threads_for(args.compare_threads if compare else args.threads, count, args.processes)
    load = wait_for_quiet(args.quiet_load, args.settle)
    print(f"[{time.strftime('%H:%M:%S')}] {label} ({root}) {count} streams, threads {threads or 'default'}, "
          f"load {load}", file=sys.stderr, flush=True)  # fmt: skip
    extra = (args.compare_serve_args if compare else args.serve_args).format(streams=count).split()
    if label == "apache":  # this checkout with Apache's proxy in front of the streams
        extra += ["--front", "apache", "--proxy-streams", str(count)]
    events_url = None
    if label.endswith("direct"):
        port = free_port()
        extra += ["--events-port", str(port)]
        events_url = f"http://127.0.0.1:{port}"
    server = CheckoutGateway(root, write_ini(directory, root), args.processes, threads, extra)
    server.start(timeout=120)
    try:
        result = measure_streams(
            server.url,
            f"Bearer {API_KEY}",
            count,
            args.messages,
            args.interval,
            args.clients,
            server.pids,
            events_url,
            args.overlap,
            args.profile,
            args.probes,
        )
        ok = ", ".join(f"{key} {result.get(key)}" for key in ("accepted", "lost_deliveries", "reached_all"))
        print(f"    {ok}", file=sys.stderr, flush=True)
    except Exception as error:  # a failed scenario is a result; the run goes on
        result = {"streams": count, "error": f"{type(error).__name__}: {error}"}
        print(f"    failed: {result['error']}", file=sys.stderr, flush=True)
    finally:
        server.stop()
        log = server.logs(3000)
        server.cleanup()
    result.update(
        {
            "gateway": label,
            "root": str(root),
            "commit": git_commit(root),
            "threads": threads or "hutch serve default",
            "serve_args": extra,
            "processes": args.processes,
            "load_average_before": load,
        }
    )
    if "error" in result:
        result["server_log_tail"] = log
    return result


def git_commit(root):
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip() or None


def posts(figures):
    return f"{figures['p50_ms']}/{figures['p99_ms']}" if figures else "-"


def table(results):
    lines = [
        f"{'gateway':<8} {'streams':>7} {'accepted':>8} {'lost':>6} {'all p50':>8} {'all p99':>8} "
        f"{'dlv p99':>8} {'RSS MiB':>8} {'MiB/1k':>7} {'CPU ms/dlv':>10} {'rabbit ms/msg':>13} {'load1':>6} "
        f"{'POST quiet p50/p99':>18} {'POST crowd p50/p99':>18}",
        "-" * 146,
    ]
    for result in results:
        if "error" in result:
            lines.append(f"{result['gateway']:<8} {result['streams']:>7}  failed: {result['error'][:80]}")
            continue
        every = result.get("reached_all") or {}
        per = result.get("per_delivery") or {}
        lines.append(
            f"{result['gateway']:<8} {result['streams']:>7} {result['accepted']:>8} "
            f"{result['lost_deliveries']:>6} "
            f"{every.get('p50_ms', '-'):>8} {every.get('p99_ms', '-'):>8} {per.get('p99_ms', '-'):>8} "
            f"{result['server_rss_mib']['with_streams']:>8} {result['rss_mib_per_1000_streams']:>7} "
            f"{result['server_cpu_ms_per_delivery']:>10} {result['broker_cpu_ms_per_message']:>13} "
            f"{result['load_average_before'][0]:>6} {posts(result.get('probe_post_no_crowd')):>18} "
            f"{posts(result.get('probe_post_crowd_open')):>18}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default=",".join(map(str, DEFAULT_COUNTS)), help="streams per scenario")
    parser.add_argument(
        "--compare-counts", default=None, help="the counts for compare roots (default: --counts)"
    )
    parser.add_argument(
        "--compare-root", help="another checkout (with its own .venv) measured in the same run"
    )
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--threads", default="serve", help="this checkout's threads: serve, auto or a number")
    parser.add_argument(
        "--compare-threads", default="auto", help="the compare root's: serve, auto or a number"
    )
    parser.add_argument(
        "--roots",
        default="this,compare",
        help="this (hutch serve's default front), apache (--front apache), compare (the other "
        "checkout), direct and compare-direct (their event servers' own port, no proxy in front)",
    )
    parser.add_argument("--apache-counts", default=None, help="the counts for apache (default: --counts)")
    parser.add_argument(
        "--probes", type=int, default=100, help="broadcast POSTs timed with no crowd and with the crowd open"
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes reading the streams")
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between broadcasts (at least)")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="broadcast every --interval even while the last one is still on its way (a steady rate)",
    )
    parser.add_argument("--quiet-load", type=float, default=2.0, help="wait for a 1-minute load under this")
    parser.add_argument("--settle", type=float, default=60, help="but at most this many seconds")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "streams.json"))
    parser.add_argument("--url", help="measure a gateway that is already up (one scenario, --counts' first)")
    parser.add_argument(
        "--serve-args",
        default="",
        help='more "hutch serve" flags for this checkout; {streams}: the count',
    )
    parser.add_argument("--compare-serve-args", default="", help="the same for the compare root")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        help="py-spy the event servers for this many seconds from the first broadcast (a profiling run, "
        "not a measurement: sampling costs CPU)",
    )
    args = parser.parse_args(argv)
    counts = [int(count) for count in args.counts.split(",")]
    limit = raise_open_files_limit()  # inherited by the gateways started below
    if args.url:
        print(json.dumps(measure_streams(args.url, f"Bearer {API_KEY}", counts[0], args.messages,
                                         args.interval, args.clients), indent=2))  # fmt: skip
        return
    wanted = args.roots.split(",")
    roots = [("this", ROOT)] if "this" in wanted else []
    if "apache" in wanted:
        roots.append(("apache", ROOT))
    if "direct" in wanted:
        roots.append(("direct", ROOT))
    for label in ("compare", "compare-direct"):
        if args.compare_root and label in wanted:
            roots.append((label, pathlib.Path(args.compare_root).resolve()))
    directory = tempfile.mkdtemp(prefix="hutch-bench-streams-")
    os.chmod(directory, 0o755)  # the daemon user reads the ini
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    compare_counts = [int(count) for count in (args.compare_counts or args.counts).split(",")]
    apache_counts = [int(count) for count in (args.apache_counts or args.counts).split(",")]
    results = [
        run_scenario(label, root, count, args, directory)
        for count in counts
        for label, root in roots
        if (not label.startswith("compare") or count in compare_counts)
        and (label != "apache" or count in apache_counts)
    ]
    document = {
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "open_files_limit": limit,
        "arguments": vars(args),
        "results": results,
    }
    pathlib.Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print(table(results))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
