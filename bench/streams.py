"""Event streams: 1,000, 5,000 and 10,000 concurrent SSE streams on one host (``bench/run streams``).

For each count and root it starts this checkout's ``hutch serve`` (``this``: its default front,
HAProxy; ``apache``: ``--front apache``, a worker thread per stream; ``direct``: the streams opened
on the event servers' own port) with production.ini's ``events_*`` settings (history on), opens
the streams from a few client processes (bench/sse_clients.py), broadcasts warm-up messages until
every stream receives one, then ``--messages`` broadcasts through ``POST /broadcast/{exchange}``,
each once the one before has reached every stream and at least ``--interval`` s after it.
Reported: streams accepted (a 503 is tried again, up to 5 times, as a browser would); deliveries
lost (missing 30 s after the last broadcast); reach-all p50/p99 (from just before a POST to the
moment the last stream has it); ``--probes`` POSTs timed before any stream opens and with the crowd
open; RSS by kind of server process, idle and with the streams; server, client and RabbitMQ CPU
per delivery.  Before each scenario it waits (at most ``--settle`` s) for the 1-minute load
average to drop under ``--quiet-load``, and records it: the machine is shared.
"""

import argparse
import configparser
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

import requests

from harness import amqp
from harness.server import GatewayServer, free_port

from . import servers
from .measure import broker_pids, cpu_total, rss_kib, session_pids
from .sse_clients import ClientPool, raise_open_files_limit, token

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIFETIME = "900"  # events_max_lifetime: no planned reconnect during a scenario
DEFAULT_COUNTS = (1000, 5000, 10000)
WARMUP_TIMEOUT = 90.0
WARMUP_FIRST = 1_000_000  # warm-up messages are numbered from here, apart from the measured ones
DELIVERY_TIMEOUT = 30.0  # seconds after the last broadcast a late delivery still counts
OPEN_ATTEMPTS = 5  # a 503 (that process is full) is tried again, as a browser would
PROCESSES = 2
PROBE_FIRST = 2_000_000  # probe broadcasts are numbered from here
PROBE_INTERVAL = 0.05  # seconds between probe broadcasts


# --- the server processes ---------------------------------------------------


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


class Gateway(GatewayServer):
    """``hutch serve`` of this checkout with its own default threads."""

    def command(self):
        command = super().command()
        index = command.index("--threads")
        return command[:index] + command[index + 2 :]

    def pids(self):
        return session_pids(self.process.pid)


def write_ini(directory):
    """bench/gateway.ini with production.ini's ``events_*`` settings (history on), the lifetime
    raised above a scenario's length."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "production.ini")
    events = {key: value for key, value in parser["app:main"].items() if key.startswith("events_")}
    events["events_max_lifetime"] = LIFETIME
    ini = servers.gateway_ini(directory)
    settings = "".join(f"{key} = {value}\n" for key, value in events.items())
    ini.write_text(ini.read_text().replace("[app:main]\n", "[app:main]\n" + settings, 1))
    return ini


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
    url, authorization, count, messages, interval, clients, server_pids=list, events_url=None, probes=0
):
    """Open ``count`` streams on ``url``'s gateway (or straight on ``events_url``, an event server's
    own address), broadcast ``messages`` through ``url``: the figures (a dict).  Each broadcast
    waits until the one before reached every stream."""
    run = uuid.uuid4().hex[:8]
    exchange = f"bench.streams.{run}"
    pids = server_pids
    warm = requests.Session()
    for _ in range(20):  # load the app in the server processes before "idle" is read
        warm.get(f"{url}/health", timeout=30)
    rss_idle, rss_kinds_idle = rss_kib(pids()), by_kind(pids(), rss_kib)
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
            servers, broker = pids(), broker_pids()
            rss_streams, rss_kinds = rss_kib(servers), by_kind(servers, rss_kib)
            cpu_kinds_before = by_kind(servers, cpu_total)
            cpu_before = (cpu_total(servers), cpu_total(broker), cpu_total(pool.pids))
            published = {}
            for number in range(messages):
                published[number] = publisher.send(number)
                wait_for_everyone(pool, number, published[number] + DELIVERY_TIMEOUT)
                pause = published[number] + interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while pool.missing(range(messages)) and time.monotonic() < deadline:
                time.sleep(0.25)
            cpu_after = (cpu_total(servers), cpu_total(broker), cpu_total(pool.pids))
            cpu_kinds_after = by_kind(servers, cpu_total)
            report = pool.report(range(messages))
    finally:
        amqp.delete(exchanges=[exchange])  # and its history stream; the servers' queues are exclusive
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
        "server_rss_mib_by_kind": in_mib(rss_kinds),
        "server_rss_mib_idle_by_kind": in_mib(rss_kinds_idle),
        "server_cpu_s_by_kind": {
            kind: round(seconds - cpu_kinds_before.get(kind, (0, 0.0))[1], 2)
            for kind, (_, seconds) in cpu_kinds_after.items()
        },
        "rss_mib_per_1000_streams": round((rss_streams - rss_idle) / 1024 / accepted * 1000, 1),
        "server_cpu_ms_per_delivery": round(server_cpu * 1000 / max(delivered, 1), 4),
        "server_cpu_s": round(server_cpu, 2),
        "broker_cpu_ms_per_message": round(broker_cpu * 1000 / messages, 2),
        "client_cpu_ms_per_delivery": round(client_cpu * 1000 / max(delivered, 1), 4),
    }


def in_mib(kinds):
    return {kind: {"processes": n, "mib": round(kib / 1024, 1)} for kind, (n, kib) in kinds.items()}


# --- the run -------------------------------------------------------------------


def wait_for_quiet(threshold, longest):
    """Wait (at most ``longest`` s) for the 1-minute load average to drop under ``threshold``."""
    deadline = time.monotonic() + longest
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)
    return [round(value, 2) for value in os.getloadavg()]


def run_scenario(label, count, args, directory):
    """One gateway, one count: ``this`` (the default front), ``apache`` or ``direct``."""
    load = wait_for_quiet(args.quiet_load, args.settle)
    print(f"[{time.strftime('%H:%M:%S')}] {label} {count} streams, load {load}", file=sys.stderr, flush=True)
    extra = {"this": [], "apache": ["--front", "apache", "--proxy-streams", str(count)]}.get(label, [])
    events_url = None
    if label == "direct":
        port = free_port()
        extra, events_url = ["--events-port", str(port)], f"http://127.0.0.1:{port}"
    server = Gateway(write_ini(directory), processes=args.processes, extra_args=extra)
    server.start(timeout=120)
    try:
        result = measure_streams(
            server.url,
            servers.BEARER,
            count,
            args.messages,
            args.interval,
            args.clients,
            server.pids,
            events_url,
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
    result.update(gateway=label, serve_args=extra, processes=args.processes, load_average_before=load)
    if "error" in result:
        result["server_log_tail"] = log
    return result


def posts(figures):
    return f"{figures['p50_ms']}/{figures['p99_ms']}" if figures else "-"


def kib_per_stream(result, kind):
    """RSS growth per stream (KiB) of this kind of server process."""
    sizes = [
        result[key].get(kind, {}).get("mib", 0)
        for key in ("server_rss_mib_by_kind", "server_rss_mib_idle_by_kind")
    ]
    return round((sizes[0] - sizes[1]) * 1024 / max(result["accepted"], 1), 1)


def table(results):
    heads = ("streams", "accepted", "lost", "all p50", "all p99", "POST quiet", "POST crowd", "KiB/stream",
             "CPU ms/dlv", "load1")  # fmt: skip
    lines = [f"{'gateway':<8} " + " ".join(f"{head:>12}" for head in heads)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['gateway']:<8} {r['streams']:>12}  failed: {r['error'][:80]}")
            continue
        every, front = r.get("reached_all") or {}, "front" if r["gateway"] == "this" else "apache"
        cells = (r["streams"], r["accepted"], r["lost_deliveries"], every.get("p50_ms", "-"),
                 every.get("p99_ms", "-"), posts(r.get("probe_post_no_crowd")),
                 posts(r.get("probe_post_crowd_open")),
                 f"{kib_per_stream(r, 'events')}+{kib_per_stream(r, front)}", r["server_cpu_ms_per_delivery"],
                 r["load_average_before"][0])  # fmt: skip
        lines.append(f"{r['gateway']:<8} " + " ".join(f"{cell:>12}" for cell in cells))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run streams", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default=",".join(map(str, DEFAULT_COUNTS)), help="streams per scenario")
    parser.add_argument("--roots", default="this", help="this (the default front), apache, direct")
    parser.add_argument("--apache-counts", default=None, help="the counts for apache (default: --counts)")
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument(
        "--probes", type=int, default=100, help="broadcast POSTs timed with no crowd and with it"
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes reading the streams")
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between broadcasts (at least)")
    parser.add_argument("--quiet-load", type=float, default=2.0, help="wait for a 1-minute load under this")
    parser.add_argument("--settle", type=float, default=5, help="but at most this many seconds")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "streams.json"))
    args = parser.parse_args(argv)
    counts = [int(count) for count in args.counts.split(",")]
    apache_counts = [int(count) for count in (args.apache_counts or args.counts).split(",")]
    limit = raise_open_files_limit()  # inherited by the gateways started below
    directory = tempfile.mkdtemp(prefix="hutch-bench-streams-")
    os.chmod(directory, 0o755)  # the daemon user reads the ini
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    roots = args.roots.split(",")
    results = [
        run_scenario(label, count, args, directory)
        for count in counts
        for label in roots
        if label != "apache" or count in apache_counts
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
