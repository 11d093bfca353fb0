"""Bulk publishing in one run: messages/s by batch size, beside the management API and the broker.

``python -m bench.batch [--seconds 5] [--connections 16] [--rounds 2] [--json FILE]``
serves Hutch as ``hutch serve`` does (``bench.servers``: bench/gateway.ini,
production's settings, 2 processes x 10 threads) and loads it with wrk (one
thread, ``--connections`` connections, bench/lua/batch.lua) posting batches
of 1, 10, 100 and 1,000 lines of 200-byte bodies:

- ``POST /broadcast/{exchange}/batch`` to a fanout with one bound queue;
- ``POST /notify/{exchange}/batch`` to a durable fanout with one quorum
  queue (every line persistent and confirmed);
- RabbitMQ's management API publish (``rabbitmq_management``, enabled by
  the run) of the same body to the same quorum queue, one message a request;
- the broker's own ceiling on this host (``bench.ceiling``): 1, 2 and 3
  processes each publishing pipelined, confirmed messages on a connection of
  its own, no HTTP, into the same quorum queue.

Rounds are interleaved and the best round of each counts (other work on the
machine only ever slows a run down).  After each notify and management
measurement the quorum queue must hold every message answered (a line
reported 202 is a message stored), then it is purged.  CPU per message of
the broker and the gateway's daemons and Apache comes from /proc.  Hold the
machine's benchmark lock while it runs.
"""

import argparse
import json
import pathlib
import shutil
import sys
import time

import requests

from . import ceiling, cpu, management, servers
from .broker import AMQP_URL, Housekeeper, run_id
from .load import run_wrk
from .scenarios import BEARER, private_directory, say

BATCH_LUA = servers.BENCH / "lua" / "batch.lua"
BODY = ("Hutch bulk publishing benchmark message, 200 bytes of text: " * 4)[:200]
SIZES = (1, 10, 100, 1000)
IDIOMS = ("broadcast", "notify")


def batch_body(size):
    line = json.dumps({"body": BODY, "content_type": "text/plain"}) + "\n"
    return line * size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk -d of each measurement")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best counts")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--ceiling-processes", default="1,2,3")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    version = management.enable()
    say(f"RabbitMQ {version}, management API enabled")
    prefix = f"bench.{run_id()}.batch"
    directory = private_directory("hutch-bench-batch-")
    ini = servers.write_gateway_ini(directory)
    hutch = servers.gateway_server(ini)
    housekeeper = Housekeeper()
    result = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "flock /tmp/hutch-heavy.lock .venv/bin/python -m bench.batch "
        + " ".join(argv or sys.argv[1:]),
        "seconds": args.seconds,
        "connections": args.connections,
        "rounds": args.rounds,
        "body_bytes": len(BODY),
    }
    try:
        say(f"starting Hutch on port {hutch.port}")
        hutch.start()
        exchanges = declare(housekeeper, prefix)
        files = {}
        for size in sizes:
            files[size] = directory / f"batch-{size}.ndjson"
            files[size].write_text(batch_body(size))
        for idiom in IDIOMS:
            check(hutch.url, idiom, exchanges[idiom][0])
        meter_groups = {
            "rabbitmq": cpu.broker_pids,
            "daemons": hutch.daemon_pids,
            "apache": hutch.apache_pids,
        }
        loads = {}
        for number in range(1, args.rounds + 1):
            for idiom in IDIOMS:
                exchange, queue = exchanges[idiom]
                for size in sizes:
                    url = f"{hutch.url}/{idiom}/{exchange}/batch"
                    figures = measured(
                        meter_groups,
                        lambda url=url, size=size: run_wrk(
                            url,
                            args.connections,
                            args.seconds,
                            BEARER,
                            body="",
                            script=BATCH_LUA,
                            environ={"BENCH_BODY_FILE": str(files[size])},
                        ),
                        size,
                    )
                    if idiom == "notify":
                        stored_every_answer(housekeeper, queue, figures)
                    housekeeper.purge(queue)
                    loads.setdefault(f"{idiom} batch {size}", []).append(figures)
                    report(number, f"{idiom} batch {size}", figures)
            queue = exchanges["notify"][1]
            figures = measured(
                {"rabbitmq": cpu.broker_pids},
                lambda queue=queue: run_wrk(
                    management.PUBLISH_URL,
                    args.connections,
                    args.seconds,
                    management.AUTHORIZATION,
                    body=management.publish_body(queue, BODY),
                ),
                1,
            )
            stored_every_answer(housekeeper, queue, figures)
            housekeeper.purge(queue)
            loads.setdefault("management API publish", []).append(figures)
            report(number, "management API publish", figures)
            for processes in [int(n) for n in args.ceiling_processes.split(",")]:
                before = cpu.Meter({"rabbitmq": cpu.broker_pids}).snapshot()
                rate = ceiling.ceiling(
                    AMQP_URL, exchanges["notify"][0], BODY.encode(), args.seconds, processes
                )
                after = cpu.Meter({"rabbitmq": cpu.broker_pids}).snapshot()
                count = rate * args.seconds
                figures = {
                    "messages_per_s": round(rate),
                    "cpu_us_per_message": per_message_us(before, after, count),
                }
                housekeeper.purge(queue)
                loads.setdefault(f"broker ceiling, {processes} publisher(s)", []).append(figures)
                report(number, f"broker ceiling, {processes} publisher(s)", figures)
        result["best"] = {name: max(runs, key=lambda f: f["messages_per_s"]) for name, runs in loads.items()}
        result["rounds_messages_per_s"] = {
            name: [f["messages_per_s"] for f in runs] for name, runs in loads.items()
        }
        summarize(result)
    finally:
        hutch.stop()
        hutch.cleanup()
        housekeeper.close()
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def declare(housekeeper, prefix):
    """{idiom: (exchange, queue)}, declared as Hutch declares the exchanges."""
    channel = housekeeper.channel
    broadcast, broadcast_queue = f"{prefix}.b", f"{prefix}.b.q"
    channel.exchange_declare(broadcast, "fanout", durable=False, auto_delete=True)
    channel.queue_declare(broadcast_queue)  # purged after each measurement
    channel.queue_bind(broadcast_queue, broadcast)
    notify, notify_queue = f"{prefix}.n", f"{prefix}.n.quorum"
    channel.exchange_declare(notify, "fanout", durable=True, auto_delete=False)
    channel.queue_declare(notify_queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(notify_queue, notify)
    housekeeper.remember([broadcast, notify], [broadcast_queue, notify_queue])
    return {"broadcast": (broadcast, broadcast_queue), "notify": (notify, notify_queue)}


def check(url, idiom, exchange):
    """One batch by hand: every line 202 (and routed) before wrk hammers the route."""
    answer = requests.post(
        f"{url}/{idiom}/{exchange}/batch",
        data=batch_body(10),
        headers={"Authorization": BEARER, "Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    data = answer.json()
    if answer.status_code != 200 or data["accepted"] != 10:
        raise RuntimeError(f"{idiom} batch: {answer.status_code} {answer.text[:300]}")
    if idiom == "broadcast" and not all(line["routed"] for line in data["results"]):
        raise RuntimeError("broadcast batch: a line was not routed to the bench's queue")


def measured(groups, load, size):
    """wrk's figures as messages: per second, and CPU µs per message of each group."""
    meter = cpu.Meter(groups)
    before = meter.snapshot()
    figures = load()
    after = meter.snapshot()
    messages = figures.requests * size
    return {
        "messages_per_s": round(figures.requests_per_s * size),
        "requests_per_s": figures.requests_per_s,
        "requests": figures.requests,
        "messages": messages,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
        "failed": figures.failed,
        "cpu_us_per_message": per_message_us(before, after, messages),
    }


def per_message_us(before, after, messages):
    return {
        name: round(ms * 1000, 1) for name, ms in cpu.Meter.per_request_ms(before, after, messages).items()
    }


def stored_every_answer(housekeeper, queue, figures):
    """Every message answered is in the quorum queue (wrk stops with some still in flight: >=)."""
    depth = housekeeper.depth(queue)
    if figures["failed"] or depth < figures["messages"]:
        raise RuntimeError(
            f"{queue}: {depth} stored for {figures['messages']} answered, {figures['failed']} failed"
        )


def report(number, name, figures):
    extra = f"  p50 {figures['p50_ms']:.2f} ms" if "p50_ms" in figures else ""
    say(
        f"round {number} {name:<36} {figures['messages_per_s']:>8} msg/s{extra}  "
        f"CPU µs/msg {figures['cpu_us_per_message']}"
    )


def summarize(result):
    best = result["best"]
    ceilings = {name: figures for name, figures in best.items() if name.startswith("broker ceiling")}
    top = max(figures["messages_per_s"] for figures in ceilings.values())
    management_rate = best["management API publish"]["messages_per_s"]
    result["broker_ceiling_messages_per_s"] = top
    print(f"\n{'':38} {'msg/s':>8}  {'of ceiling':>10}  {'x mgmt API':>10}")
    for name, figures in best.items():
        rate = figures["messages_per_s"]
        print(f"{name:38} {rate:>8}  {rate / top:>10.2f}  {rate / management_rate:>10.1f}")
    notify_100 = best.get("notify batch 100", {}).get("messages_per_s")
    broadcast_100 = best.get("broadcast batch 100", {}).get("messages_per_s")
    if notify_100:
        result["notify_100_of_ceiling"] = round(notify_100 / top, 2)
        result["notify_100_over_management"] = round(notify_100 / management_rate, 1)
        print(
            f"\nnotify batch 100: {notify_100 / top:.2f} of the broker's ceiling (target >= 0.60), "
            f"{notify_100 / management_rate:.1f} x the management API (target >= 5)"
        )
    if broadcast_100:
        print(f"broadcast batch 100: {broadcast_100} msg/s (target >= 30,000)")


if __name__ == "__main__":
    sys.exit(main())
