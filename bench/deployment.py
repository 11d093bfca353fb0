"""What a deployment gets, beside what bench/run measures: broadcast over hello-world, in one run.

``python -m bench.deployment [--rounds 3] [--seconds 5] [--json FILE]``
serves, at once and loaded in interleaved rounds by the same wrk (``-t1
-c16``, POST of bench/run's small body to a broadcast exchange nobody
listens to):

- hello-world, as bench/run serves it (``bench.servers``);
- A: Hutch as bench/run serves it: bench/gateway.ini, mod_wsgi-express with
  ``hutch serve``'s flags, no event servers;
- B: Hutch as a deployment runs it (bin/run): ``hutch serve`` itself (event
  servers, Apache's /events proxy) with production.ini, its API key file and
  session secret in the run's folder;
- C: production.ini served as A is: the ini's share of B - A;
- D: bench/gateway.ini served by ``hutch serve``: the server's share;
- E: C without ``events_history`` (production.ini gives every broadcast
  exchange a stream queue): that setting's share.

All at 2 processes x 10 threads.  Ratios to hello-world come from the best
round of each; CPU per request of the broker (and of A/C/E's daemons) from
/proc.  Hold the machine's benchmark lock while it runs.
"""

import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
import time

from harness.server import GatewayServer
from hutch.amqp.history import HistoryPolicy
from hutch.serve.plan import DEFAULT_USER

from . import cpu, servers
from .broker import Housekeeper, run_id
from .load import run_wrk
from .scenarios import API_KEY, BEARER, private_directory, say

HISTORY_KEYS = (
    "events_history",
    "events_history_count",
    "events_history_max_age",
    "events_history_max_bytes",
)


def production_ini(directory, name, drop=()):
    """production.ini with its var/ files in ``directory`` (a key file holding the bench's key)."""
    var = directory / f"var-{name}"
    var.mkdir()
    text = (servers.ROOT / "production.ini").read_text().replace("%(here)s/var/", f"{var}/")
    apps = f"apps_directory = {servers.ROOT}/apps\ntemplates_directory = {servers.ROOT}/templates\n"
    text = text.replace("[app:main]\n", "[app:main]\n" + apps, 1)
    for key in drop:
        text = re.sub(rf"^{re.escape(key)} = .*\n", "", text, flags=re.MULTILINE)
    ini = directory / f"{name}.ini"
    ini.write_text(text)
    ini.chmod(0o644)
    keys = var / "api-keys"
    keys.write_text(f"bench sha256:{hashlib.sha256(API_KEY.encode()).hexdigest()} *\n")
    keys.chmod(0o600)  # the gateway refuses a key file others may read
    if os.geteuid() == 0:  # the daemons run as the default user: the key file and the secret are theirs
        shutil.chown(var, DEFAULT_USER)
        shutil.chown(keys, DEFAULT_USER)
    return ini


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    directory = private_directory("hutch-bench-deployment-")
    bench_ini = servers.write_gateway_ini(directory)
    production = production_ini(directory, "production")
    without_history = production_ini(directory, "nohistory", drop=HISTORY_KEYS)
    runs = {
        "hello-world": servers.hello_server(bench_ini),
        "A bench/run's way: bench ini, bench server": servers.gateway_server(bench_ini),
        "B deployment: production.ini, hutch serve": GatewayServer(production, processes=2, threads=10),
        "C production.ini, bench server": servers.gateway_server(production),
        "D bench ini, hutch serve": GatewayServer(bench_ini, processes=2, threads=10),
        "E production.ini without events_history, bench server": servers.gateway_server(without_history),
    }
    exchange = f"bench.{run_id()}.deployment"
    housekeeper = Housekeeper()
    housekeeper.remember([exchange], [HistoryPolicy.queue(exchange)])
    started = []
    loads = {name: [] for name in runs}
    try:
        for name, server in runs.items():
            say(f"starting {name}")
            server.start()
            started.append(server)
        for number in range(1, args.rounds + 1):
            for name, server in runs.items():
                groups = {"rabbitmq": cpu.broker_pids}
                if hasattr(server, "daemon_pids"):
                    groups["daemons"] = server.daemon_pids
                meter = cpu.Meter(groups)
                before = meter.snapshot()
                load = run_wrk(f"{server.url}/broadcast/{exchange}", 16, args.seconds, BEARER)
                if load.failed:
                    raise RuntimeError(f"{name}: {load.failed} requests failed")
                figures = {
                    "requests_per_s": load.requests_per_s,
                    "p50_ms": load.p50_ms,
                    "cpu_ms": meter.per_request_ms(before, meter.snapshot(), load.requests),
                }
                loads[name].append(figures)
                say(
                    f"round {number} {name:55} {load.requests_per_s:8.0f} req/s  CPU ms/req "
                    f"{figures['cpu_ms']}"
                )
    finally:
        for server in started:
            server.stop()
            server.cleanup()
        housekeeper.close()
        shutil.rmtree(directory, ignore_errors=True)
    best = {name: max(runs_, key=lambda f: f["requests_per_s"]) for name, runs_ in loads.items()}
    hello = best["hello-world"]["requests_per_s"]
    print(f"\n{'':58} {'req/s':>8}  {'x hello':>7}  rounds")
    for name, figures in best.items():
        rounds = [round(f["requests_per_s"]) for f in loads[name]]
        print(
            f"{name:58} {figures['requests_per_s']:8.0f}  {figures['requests_per_s'] / hello:7.2f}  {rounds}"
        )
    if args.json:
        result = {
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "best": best,
            "rounds": loads,
        }
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
