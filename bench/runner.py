"""bench/run [SUITE] [options]: the benchmark's one entry point (BENCHMARKS.md has the figures).

Suites: ``main`` (the default: Hutch's broadcast, notify and RPC beside hello-world, RabbitMQ's
management API, a naive app, a pika-per-thread app, the stack without AMQP, and AMQP alone),
``batch`` (bulk publishing by batch size beside the management API and the broker's ceiling),
``deployment`` (bench/run's way of serving beside ``hutch serve`` with production.ini), and
``streams`` and ``push`` (their own options: ``bench/run streams --help``).

The wrk suites are data (bench/scenarios.py).  Each starts its servers with the same flags,
checks every scenario by hand, warms it up for 2 s, then measures ``--rounds`` interleaved rounds
at each concurrency; the best round counts (other work on the machine only ever slows a round
down) and every round is in the JSON.  Exit status 1 when a target is missed.
"""

import argparse
import dataclasses
import datetime
import json
import pathlib
import shutil
import sys
import tempfile
import time

import requests

from harness.server import GatewayServer

from . import broker, ceiling, measure, servers
from .scenarios import SUITES, ndjson

RESULTS = servers.BENCH / "results"
OUTPUTS = {"main": "latest.json", "batch": "batch.json", "deployment": "deployment.json"}
RPC_P50_SLACK_MS = 0.6


def say(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Run:
    """One suite's servers, responders and broker objects; ``close`` removes them all."""

    def __init__(self, suite, args):
        self.suite, self.args = suite, args
        self.id = broker.run_id()
        self.prefix = f"bench.{self.id}"
        self.directory = servers.private_directory(f"hutch-bench-{self.id}-")
        inis = {"bench": servers.gateway_ini(self.directory, args.gateway_root)}
        if any(ini != "bench" for _, _, ini in suite.servers.values()):
            inis["production"] = servers.production_ini(self.directory, "production")
            inis["nohistory"] = servers.production_ini(self.directory, "nohistory", servers.HISTORY)
        self.servers = {}
        for name, (how, app, ini) in suite.servers.items():
            if how == "serve":
                self.servers[name] = GatewayServer(
                    inis[ini], servers.MOUNT_POINT, args.processes, args.threads
                )
            else:
                self.servers[name] = servers.Server(name, app, inis[ini], args.gateway_root)
        if args.compare_root:
            ini_b = servers.gateway_ini(self.directory, args.compare_root)
            self.servers["hutch_b"] = servers.Server("hutch_b", "hutch", ini_b, args.compare_root)
        self.housekeeper = self.responders = None
        self.done = set()

    def start(self, scenarios):
        """Start the servers ``scenarios`` load (and only those), the responders if one is an RPC."""
        self.housekeeper = broker.Housekeeper()
        for name in [name for name in self.servers if all(c.server != name for c in scenarios)]:
            self.servers.pop(name).cleanup()
        for name, server in self.servers.items():
            say(f"starting {name} on port {server.port}")
            server.start()
        if any("/rpc/" in scenario.path for scenario in scenarios):
            self.responders = broker.Responders(f"{self.prefix}.rpc", "echo", self.args.responders)
            self.housekeeper.remember(exchanges=[f"{self.prefix}.rpc"])

    def scenarios(self, only):
        """The suite's scenarios with their names filled in; with a compare tree each twin right after."""
        chosen = []
        for scenario in self.suite.scenarios:
            chosen.append(self.concrete(scenario, self.prefix, ""))
            if scenario.twin and "hutch_b" in self.servers:
                chosen.append(self.concrete(scenario, f"{self.prefix}_b", "_b"))
        return [scenario for scenario in chosen if not only or scenario.name in only]

    def concrete(self, scenario, prefix, suffix):
        fill = {"p": prefix, "run": self.prefix}
        return dataclasses.replace(
            scenario,
            name=scenario.name + suffix,
            label=scenario.label + (" [B]" if suffix else ""),
            server=scenario.server + suffix,
            path=scenario.path.format(**fill),
            queue=scenario.queue.format(**fill),
        )

    def prepare(self, scenario):
        """Declare once what ``scenario`` needs; its request's URL, authorization and body."""
        if scenario.exchange:
            self.housekeeper.remember(exchanges=[scenario.exchange])
        if scenario.queue:
            self.housekeeper.remember(queues=[scenario.queue])
        if scenario.setup and (scenario.setup, scenario.exchange, scenario.queue) not in self.done:
            self.done.add((scenario.setup, scenario.exchange, scenario.queue))
            scenario.setup(self, scenario)
        if scenario.server == "management":
            body = broker.management_body(scenario.queue, self.suite.payload)
            return broker.MANAGEMENT_PUBLISH_URL, broker.MANAGEMENT_AUTHORIZATION, body, ""
        url = self.servers[scenario.server].url + scenario.path if scenario.server in self.servers else ""
        if scenario.batch > 1 or scenario.path.endswith("/batch"):
            body_file = self.directory / f"batch-{scenario.batch}.ndjson"
            body_file.write_text(ndjson(self.suite.payload, scenario.batch))
            return url, servers.BEARER, "", body_file
        return url, servers.BEARER, self.suite.payload, ""

    def check(self, scenario, url, authorization, body, body_file):
        """One request by hand: the scenario does what it claims before wrk hammers it."""
        data = body_file.read_bytes() if body_file else body
        kind = "application/x-ndjson" if body_file else "application/json"
        answer = requests.post(
            url, data=data, headers={"Authorization": authorization, "Content-Type": kind}, timeout=30
        )
        if answer.status_code != scenario.status:
            raise RuntimeError(f"{scenario.name}: {answer.status_code} {answer.text[:300]}")
        data = answer.json() if body_file or scenario.routed is not None else {}
        lines = data["results"] if body_file else [data]
        wrong = scenario.routed is not None and any(line["routed"] != scenario.routed for line in lines)
        if wrong or len(lines) != scenario.batch:
            raise RuntimeError(f"{scenario.name}: expected routed {scenario.routed}, got {answer.text[:300]}")

    def meter(self, scenario):
        groups = {"rabbitmq": measure.broker_pids}
        server = self.servers.get(scenario.server)
        if hasattr(server, "daemon_pids"):
            groups.update(daemons=server.daemon_pids, apache=server.apache_pids)
        if self.responders and "/rpc/" in scenario.path:
            groups["responders"] = lambda: [process.pid for process in self.responders.processes]
        return measure.Meter(groups)

    def load(self, scenario, prepared, connections, seconds):
        """One measurement: wrk's (or the ceiling's) figures, CPU per message, the queue emptied."""
        url, authorization, body, body_file = prepared
        if scenario.publishers:

            def load():  # the broker's ceiling: confirmed messages/s, no HTTP
                rate = ceiling.ceiling(
                    broker.AMQP_URL, scenario.exchange, body.encode(), seconds, scenario.publishers
                )
                return measure.Load("", 0, seconds, round(rate * seconds), round(rate, 1))
        else:

            def load():
                return measure.run_wrk(url, connections, seconds, authorization, body, body_file=body_file)

        figures = self.meter(scenario).around(load, lambda figures: figures.requests * scenario.batch)
        if scenario.stored:  # wrk stops with some in flight: at least every message answered
            depth, answered = self.housekeeper.depth(scenario.queue), figures.requests * scenario.batch
            if figures.failed or depth < answered:
                raise RuntimeError(
                    f"{scenario.queue}: {depth} stored for {answered} answered, {figures.failed} failed"
                )
        if scenario.queue:
            self.housekeeper.purge(scenario.queue)
        return figures

    def close(self):
        if self.responders is not None:
            self.responders.stop()
        for server in self.servers.values():
            server.stop()
            server.cleanup()
        if self.housekeeper is not None:
            self.housekeeper.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def measure_suite(run, scenarios, args):
    """Check and warm up every scenario, then ``rounds`` interleaved rounds at each concurrency."""
    prepared = {scenario.name: run.prepare(scenario) for scenario in scenarios}
    for scenario in scenarios:
        if not scenario.publishers:
            run.check(scenario, *prepared[scenario.name])
            run.load(scenario, prepared[scenario.name], args.connections[0], 2)
    loads = {scenario.name: {f"c{c}": [] for c in args.connections} for scenario in scenarios}
    for number in range(1, args.rounds + 1):
        for scenario in scenarios:
            for connections in args.connections[: 1 if scenario.publishers else None]:
                load = run.load(scenario, prepared[scenario.name], connections, args.seconds)
                loads[scenario.name][f"c{connections}"].append(load)
                rate = load.requests_per_s * scenario.batch
                say(f"round {number} {scenario.name:<18} c={connections:<3} {rate:>8.0f}/s p50 {load.p50_ms}")
    results = {}
    for scenario in scenarios:
        results[scenario.name] = {"label": scenario.label}
        for key, runs in loads[scenario.name].items():
            if runs:
                best = dataclasses.asdict(max(runs, key=lambda load: load.requests_per_s))
                best.update(
                    rate=round(best["requests_per_s"] * scenario.batch), failed=sum(r.failed for r in runs)
                )
                best["rounds_rate"] = [round(load.requests_per_s * scenario.batch) for load in runs]
                results[scenario.name][key] = best
    return results


# --- the report ---------------------------------------------------------------------------------


def targets(suite, results, ceilings):
    rate = {name: row["c16"]["rate"] for name, row in results.items() if "c16" in row}
    rate["ceiling"] = ceilings
    rows = []
    for label, numerator, denominator, factor in suite.targets:
        if rate.get(numerator) and (denominator is None or rate.get(denominator)):
            value = rate[numerator] / rate[denominator] if denominator else rate[numerator]
            rows.append(
                {"target": label, "measured": round(value, 2), "needed": factor, "pass": value >= factor}
            )
    if "rpc" in results and "hello" in results and "c1" in results["rpc"]:
        gap = results["rpc"]["c1"]["p50_ms"] - results["hello"]["c1"]["p50_ms"]
        rows.append(
            {
                "target": f"rpc p50 at c=1 <= hello-world's + {RPC_P50_SLACK_MS} ms",
                "measured": round(gap, 3),
                "needed": RPC_P50_SLACK_MS,
                "pass": gap <= RPC_P50_SLACK_MS,
            }
        )
    return rows


def line(label, *cells):
    return f"{label:<54} " + " ".join(f"{cell:>9}" for cell in cells)


def report(document, reference):
    """The suite's table, its CPU per message by process group, and its targets."""
    results, ref = document["scenarios"], document["reference_rate"]
    keys = [key for key in ("c16", "c1") if any(key in row for row in results.values())]
    heads = [f"{key} {head}" for key in keys for head in ("/s", "p50 ms", "p99 ms")]
    lines = [line("scenario", *heads, "x " + reference, "rounds")]
    for row in results.values():
        figures = [row.get(key) for key in keys]
        cells = [
            f"{f[h]:.{d}f}" if f else ""
            for f in figures
            for h, d in (("rate", 0), ("p50_ms", 2), ("p99_ms", 2))
        ]
        first = next(f for f in figures if f)
        rounds = " ".join(map(str, first.get("rounds_rate", [])))
        lines.append(line(row["label"], *cells, f"{first['rate'] / ref:.2f}" if ref else "", rounds))
    groups = ("daemons", "apache", "rabbitmq", "responders", "wrk")
    lines += ["", line("CPU ms per message at c=16", *groups, "switches")]
    for row in results.values():
        spent, switches = row["c16"]["cpu_ms"], row["c16"]["daemon_switches"]
        lines.append(
            line(row["label"], *(f"{spent[g]:.3f}" if g in spent else "" for g in groups), switches or "")
        )
    lines += ["", line("target", "measured", "needed", "result")]
    lines += [
        line(r["target"], r["measured"], r["needed"], "PASS" if r["pass"] else "FAIL")
        for r in document["targets"]
    ]
    return "\n".join(lines)


def parse(name, argv):
    suite = SUITES[name]
    parser = argparse.ArgumentParser(prog=f"bench/run {name}", description=__doc__.split("\n\n")[0])
    options = {  # flag: (type, default, help)
        "--seconds": (int, suite.seconds, "wrk -d of each measurement"),
        "--connections": (str, ",".join(map(str, suite.connections)), "wrk -c, each in turn"),
        "--rounds": (int, suite.rounds, "interleaved rounds, the best counts"),
        "--only": (str, "", "comma-separated scenario names: a partial run"),
        "--processes": (int, servers.PROCESSES, "mod_wsgi daemons of every server"),
        "--threads": (int, servers.THREADS, "threads per daemon of every server"),
        "--gateway-root": (str, str(servers.ROOT), "serve Hutch from this tree"),
        "--compare-root": (str, None, "also serve Hutch from this tree: the scenarios *_b (main)"),
        "--responders": (int, 2, "echo responder processes for RPC"),
        "--output": (str, None, f"the run's JSON (default bench/results/{OUTPUTS[name]}; /tmp with --only)"),
    }
    for flag, (kind, default, explained) in options.items():
        parser.add_argument(flag, type=kind, default=default, help=explained)
    args = parser.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    args.compare_root = args.compare_root if name == "main" else None
    return suite, args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv and not argv[0].startswith("-") else "main"
    argv = argv[1:] if argv and argv[0] == name else argv
    if name in ("streams", "push"):
        module = __import__(f"bench.{name}", fromlist=["main"])
        return module.main(argv)
    suite, args = parse(name, argv)
    folder = pathlib.Path(tempfile.gettempdir()) if args.only else RESULTS
    output = pathlib.Path(args.output) if args.output else folder / OUTPUTS[name]
    say("enabling the management plugin (idempotent) and waiting for its API")
    document = {
        "suite": name,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run", *sys.argv[1:]]),
        "machine": measure.describe(servers.ROOT, broker.enable_management()),
    }
    servers.PROCESSES, servers.THREADS = args.processes, args.threads  # the same for every server
    run = Run(suite, args)
    try:
        scenarios = run.scenarios(set(filter(None, args.only.split(","))))
        run.start(scenarios)
        document["servers"] = {
            n: getattr(s, "arguments", None) or s.command() for n, s in run.servers.items()
        }
        say(f"run {run.id}: {len(scenarios)} scenarios x {args.rounds} rounds x c={args.connections}")
        document["scenarios"] = measure_suite(run, scenarios, args)
    finally:
        run.close()
    results = document["scenarios"]
    ceilings = max((row["c16"]["rate"] for n, row in results.items() if n.startswith("ceiling")), default=0)
    reference = {"batch": "ceiling"}.get(name, "hello")
    document["reference_rate"] = (
        ceilings if name == "batch" else results.get("hello", {}).get("c16", {}).get("rate")
    )
    document["targets"] = targets(suite, results, ceilings)
    document["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(report(document, reference))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nJSON: {output}")
    return 0 if all(row["pass"] for row in document["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
