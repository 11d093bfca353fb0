"""Event streams: N concurrent SSE streams on one host, and how fast a broadcast reaches all of them.

    .venv/bin/python -m bench.streams [--streams 200] [--processes 2] [--threads 150] [--messages 60]

starts the gateway under mod_wsgi-express (``hutch serve``, daemon mode, the
``events_*`` defaults of production.ini), opens the streams from one
client thread (non-blocking sockets, one selector), waits until every
process that serves streams has its queue bound, then broadcasts
``--messages`` messages through ``POST /broadcast/{exchange}``, one every
``--interval`` seconds.  Latency is from just before the POST is sent to
the moment the event is read on a stream, so it includes the HTTP publish,
RabbitMQ's fan-out to each process's queue, the hub's wake-up of every
stream thread, mod_wsgi and Apache.  Reported: per delivery (every stream x
every message) and per message "reached all" (the slowest stream), p50/p99;
"reached first" (the fastest stream), the fan-out spread (slowest minus
fastest stream, per message) and the POST's own round trip show where the
time goes.

``measure(url, authorization)`` runs the same against a gateway that is
already up (bench/runner.py calls it with its own, smaller gateway).
"""

import argparse
import contextlib
import json
import os
import pathlib
import selectors
import socket
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dashboard import broker  # noqa: E402 - the repository's own helpers
from tests.dashboard.processes import daemon_pids  # noqa: E402
from tests.support import amqp  # noqa: E402
from tests.support.server import GatewayServer  # noqa: E402

API_KEY = "bench-streams-api-key-0123456789abcdef"
INI = f"""# Written by bench/streams.py: production.ini's event settings, one API key.
[app:main]
use = egg:hutch
amqp_url = amqp://guest:guest@127.0.0.1:5672/%%2F
apps_directory = {ROOT}/apps
templates_directory = {ROOT}/templates
session.secret = bench-streams-secret-0123456789abcdef-0123
auth = keys
auth.key.bench = {API_KEY}
auth.permissions.bench = *
"""
CONNECT_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 10.0


class Stream:
    """One SSE connection read without blocking; remembers when each awaited id arrived."""

    def __init__(self, host, port, path, authorization):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: {authorization}\r\n\r\n".encode()
        )
        self.sock.setblocking(False)
        self.data = b""
        self.status = None
        self.feed = None  # the epoch of the process feed this stream is served from
        self.arrived = {}  # message id -> perf_counter()

    def received(self, chunk, now, awaited):
        self.data += chunk
        if self.status is None and b"\r\n" in self.data:
            self.status = int(self.data.split(b" ", 2)[1])
        if self.feed is None and b"event: ready\nid: ~" in self.data:
            self.feed = self.data.split(b"event: ready\nid: ~", 1)[1].split(b".", 1)[0].decode()
        for message_id in awaited:
            if message_id not in self.arrived and f"\nid: {message_id}\n".encode() in self.data:
                self.arrived[message_id] = now
        self.data = self.data[-4096:]  # ids are found within one event; keep only a tail


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def summary_ms(values):
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def pump(selector, streams, awaited, until, timeout):
    """Read every stream that has data until ``until()`` or ``timeout``; False on timeout."""
    deadline = time.monotonic() + timeout
    while not until():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for key, _ in selector.select(min(remaining, 0.05)):
            stream = key.data
            try:
                chunk = stream.sock.recv(65536)
            except BlockingIOError:
                continue
            now = time.perf_counter()
            if not chunk:
                selector.unregister(stream.sock)
                continue
            stream.received(chunk, now, awaited)
    return True


def everyone_has(streams, message_id):
    return lambda: all(message_id in stream.arrived for stream in streams)


def open_streams(url, authorization, count, exchange, attempts=5):
    """``count`` ready streams; a refused one (503: its process is full) is opened again, as a browser
    would, because mod_wsgi lets one daemon process take connections while it has idle threads."""
    parts = urllib.parse.urlsplit(url)
    path = f"{parts.path}/events/{exchange}"
    selector = selectors.DefaultSelector()
    streams = []
    for _attempt in range(attempts):
        for _ in range(count - len(streams)):
            stream = Stream(parts.hostname, parts.port, path, authorization)
            selector.register(stream.sock, selectors.EVENT_READ, stream)
            streams.append(stream)

        def settled():
            return all(stream.feed or stream.status not in (None, 200) for stream in streams)

        if not pump(selector, streams, (), settled, CONNECT_TIMEOUT):
            raise RuntimeError(f"not every stream became ready within {CONNECT_TIMEOUT} s")
        for stream in [stream for stream in streams if stream.status != 200]:
            with contextlib.suppress(KeyError):  # pump() already dropped a stream the server closed
                selector.unregister(stream.sock)
            stream.sock.close()
            streams.remove(stream)
        if len(streams) == count:
            return selector, streams
        time.sleep(1)
    raise RuntimeError(f"only {len(streams)} of {count} streams were accepted after {attempts} attempts")


def rss_kib(pids):
    """Resident memory of each process, KiB."""
    sizes = {}
    for pid in pids:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes[pid] = int(line.split()[1])
    return sizes


def measure(url, authorization, streams=6, messages=40, interval=0.25, daemons=None):
    """Open ``streams`` streams on ``url``'s gateway, broadcast ``messages``; the latency figures.

    ``daemons()`` (optional) returns the gateway's daemon pids, to report their memory.
    """
    exchange = f"bench.streams.{uuid.uuid4().hex[:8]}"
    memory_before = rss_kib(daemons()) if daemons else None
    selector, opened = open_streams(url, authorization, streams, exchange)
    try:
        memory_with_streams = rss_kib(daemons()) if daemons else None
        feeds = {stream.feed for stream in opened}
        broker.wait_for_bindings(exchange, lambda queues: len(queues) >= len(feeds), timeout=CONNECT_TIMEOUT)
        session = requests.Session()
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        deliveries, reached_all, first, spread, publish, lost = [], [], [], [], [], 0
        for number in range(messages):
            message_id = f"bench-{number}-{uuid.uuid4().hex[:6]}"
            started = time.perf_counter()
            answer = session.post(
                f"{url}/broadcast/{exchange}",
                data=json.dumps({"n": number}),
                headers={**headers, "Idempotency-Key": message_id},
                timeout=10,
            )
            publish.append(time.perf_counter() - started)
            if answer.status_code != 202 or not answer.json()["routed"]:
                raise RuntimeError(f"broadcast failed: {answer.status_code} {answer.text}")
            pump(selector, opened, (message_id,), everyone_has(opened, message_id), DELIVERY_TIMEOUT)
            latencies = [s.arrived[message_id] - started for s in opened if message_id in s.arrived]
            lost += len(opened) - len(latencies)
            deliveries.extend(latencies)
            if latencies:
                first.append(min(latencies))
            if len(latencies) == len(opened):
                reached_all.append(max(latencies))
                spread.append(max(latencies) - min(latencies))
            pause = interval - (time.perf_counter() - started)
            if pause > 0:
                pump(selector, opened, (), lambda: False, pause)
        return {
            "streams": len(opened),
            "processes_serving": len(feeds),
            "messages": messages,
            "interval_s": interval,
            "lost_deliveries": lost,
            "per_delivery": summary_ms(deliveries),
            "reached_all": summary_ms(reached_all) if reached_all else None,
            "reached_first": summary_ms(first) if first else None,
            "fan_out_spread": summary_ms(spread) if spread else None,
            "publish_post": summary_ms(publish),
            "daemon_rss_kib": {"idle": memory_before, "with_streams": memory_with_streams},
        }
    finally:
        for stream in opened:
            stream.sock.close()
        selector.close()
        amqp.delete(exchanges=[exchange])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=150)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--url", help="measure a gateway that is already up (with --authorization)")
    parser.add_argument("--authorization", default=f"Bearer {API_KEY}")
    parser.add_argument("express", nargs="*", help="more mod_wsgi-express flags, after --")
    args = parser.parse_args(argv)
    if args.url:
        print(json.dumps(measure(args.url, args.authorization, args.streams, args.messages, args.interval)))
        return
    directory = tempfile.mkdtemp(prefix="hutch-bench-streams-")
    os.chmod(directory, 0o755)  # the daemon user reads the ini
    ini = pathlib.Path(directory) / "streams.ini"
    ini.write_text(INI)
    server = GatewayServer(ini, processes=args.processes, threads=args.threads, extra_args=args.express)
    server.start()
    try:
        load = os.getloadavg()
        result = measure(
            server.url,
            args.authorization,
            args.streams,
            args.messages,
            args.interval,
            daemons=lambda: daemon_pids(server),
        )
        result.update(
            {
                "mod_wsgi": f"{args.processes} processes x {args.threads} threads {' '.join(args.express)}",
                "load_average_before": [round(value, 2) for value in load],
                "cpus": os.cpu_count(),
            }
        )
    finally:
        server.stop()
        server.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
