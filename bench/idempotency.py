"""What idempotent retries cost: broadcast and notify without a key, with a new key per request, and
with one key repeated (every answer but the first a replay), in one run against one gateway.

    .venv/bin/python -m bench.idempotency [--seconds 8] [--connections 16] [--rounds 2]

The gateway is ``hutch serve`` with tests/e2e/idempotency.ini (2 processes x 10 threads, the local
RabbitMQ, database 11 of the local Redis); modes alternate within each round, so a machine busy with
something else slows them alike.  The keys and broker objects of the run are deleted afterwards.
"""

import argparse
import configparser
import contextlib
import pathlib
import statistics
import uuid

import requests

from harness import amqp, redis_store
from harness.server import GatewayServer

from .load import run_wrk

ROOT = pathlib.Path(__file__).resolve().parents[1]
INI = ROOT / "tests" / "e2e" / "idempotency.ini"
LUA = ROOT / "bench" / "lua" / "idempotent.lua"
MODES = {"none": "no Idempotency-Key", "unique": "a new key per request", "repeat": "one key (replays)"}


def full_access_key(ini):
    """The secret of the ini's key with every permission (``auth.permissions.NAME = *``)."""
    app = configparser.ConfigParser(interpolation=None)
    app.read(ini)
    settings = app["app:main"]
    [name] = [key.removeprefix("auth.permissions.") for key, value in settings.items()
              if key.startswith("auth.permissions.") and value.strip() == "*"]  # fmt: skip
    return settings[f"auth.key.{name}"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    broadcast, notify = amqp.unique("bench-idem-b"), amqp.unique("bench-idem-n")
    queue = f"{notify}.sink"
    server = GatewayServer(INI, processes=2, threads=10)
    results = {}
    try:
        server.start()
        authorization = f"Bearer {full_access_key(INI)}"
        response = requests.put(
            f"{server.url}/notify/{notify}/queues/sink", headers={"Authorization": authorization}, timeout=30
        )
        assert response.status_code == 201, response.text
        for round_number in range(args.rounds):
            for idiom, exchange in (("broadcast", broadcast), ("notify", notify)):
                for mode in MODES:
                    load = run_wrk(
                        f"{server.url}/{idiom}/{exchange}",
                        args.connections,
                        args.seconds,
                        authorization=authorization,
                        script=LUA,
                        environ={
                            "BENCH_IDEMPOTENCY": mode,
                            "BENCH_RUN_ID": f"{run_id}-{round_number}-{mode}",
                        },
                    )
                    results.setdefault((idiom, mode), []).append(load)
                    with amqp.channel() as channel:
                        channel.queue_purge(queue)
    finally:
        server.stop()
        server.cleanup()
        with contextlib.suppress(Exception):
            amqp.delete(exchanges=[broadcast, notify], queues=[queue])
        store = redis_store.shared()
        redis_store.forget_exchanges(store, broadcast, notify)
        store.close()
    report(results, args)


def report(results, args):
    print(f"wrk -t1 -c{args.connections} -d{args.seconds:g}s, median of {args.rounds} rounds")
    print("| idiom | Idempotency-Key | req/s | vs none | p50 ms | p99 ms | failed |")
    print("|---|---|---|---|---|---|---|")
    for idiom in ("broadcast", "notify"):
        base = statistics.median(load.requests_per_s for load in results[(idiom, "none")])
        for mode, label in MODES.items():
            loads = results[(idiom, mode)]
            rate = statistics.median(load.requests_per_s for load in loads)
            p50 = statistics.median(load.p50_ms for load in loads)
            p99 = statistics.median(load.p99_ms for load in loads)
            failed = sum(load.failed for load in loads)
            print(
                f"| {idiom} | {label} | {rate:,.0f} | {rate / base:.2f} | {p50:.2f} | {p99:.2f} | {failed} |"
            )


if __name__ == "__main__":
    main()
