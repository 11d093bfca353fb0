"""Request/response through ``hutch serve``'s front proxy (HAProxy) and straight to Apache, paired.

    .venv/bin/python -m bench.front [--seconds 5] [--rounds 3] [--connections 1,16]

One ``hutch serve`` (this checkout); its mod_wsgi-express listens on a known
loopback port (``--gateway-port``) behind HAProxy on the public one.  Each
round runs wrk against both, one after the other and in alternating order,
for ``GET /health`` (the smallest route, the gateway's hello-world) and
``POST /broadcast/{exchange}`` (an exchange with a history stream, so every
broadcast is routed) at each concurrency: what the front adds to a
request is the difference between the two in the same round.  The JSON goes
to bench/results/front.json.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import run_wrk  # noqa: E402
from bench.streams import API_KEY, CheckoutGateway, delete_exchange, write_ini  # noqa: E402
from harness.server import free_port  # noqa: E402

ROUTES = (("health", "/health", "GET"), ("broadcast", "/broadcast/{exchange}", "POST"))  # name, path, method


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "front.json"))
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="hutch-bench-front-")
    os.chmod(directory, 0o755)
    gateway_port = free_port()
    server = CheckoutGateway(
        ROOT,
        write_ini(directory, ROOT),
        extra_args=["--front", "haproxy", "--gateway-port", str(gateway_port)],
    )
    exchange = f"bench.front.{uuid.uuid4().hex[:8]}"
    targets = {"front": server.url, "apache": f"http://127.0.0.1:{gateway_port}{server.prefix}"}
    runs = []
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    server.start(timeout=120)
    try:
        for round_number in range(args.rounds):
            order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
            for route, path, method in ROUTES:
                for connections in map(int, args.connections.split(",")):
                    for name in order:
                        url = targets[name] + path.format(exchange=exchange)
                        load = run_wrk(
                            url,
                            connections,
                            args.seconds,
                            f"Bearer {API_KEY}",
                            environ={"BENCH_METHOD": method},
                        )
                        runs.append({"round": round_number, "route": route, "target": name,
                                     "load_average": os.getloadavg()[0], **vars(load)})  # fmt: skip
                        print(f"round {round_number} {route} c={connections} {name:<6} "
                              f"{load.requests_per_s:>8} req/s p50 {load.p50_ms:.2f} "
                              f"p99 {load.p99_ms:.2f} ms failed {load.failed}",
                              file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.stop()
        server.cleanup()
        delete_exchange(exchange)
    summary = {}
    for route, _path, _script in ROUTES:
        for connections in map(int, args.connections.split(",")):
            for name in targets:
                mine = [
                    run
                    for run in runs
                    if (run["route"], run["target"], run["connections"]) == (route, name, connections)
                ]
                summary[f"{route} c={connections} {name}"] = {
                    key: round(statistics.median(run[key] for run in mine), 3)
                    for key in ("requests_per_s", "p50_ms", "p99_ms")
                }
    document = {"started": started, "arguments": vars(args), "summary": summary, "runs": runs}
    pathlib.Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    for key, figures in summary.items():
        print(f"{key:<28} {figures}")


if __name__ == "__main__":
    main()
