"""bench/run: start every server with the same flags, load each with wrk, report.

One run measures, on this machine and against the shared RabbitMQ:
hello-world WSGI, Hutch broadcast (no queue; one bound queue), notify (one
registered consumer queue), RPC (echo responders), RabbitMQ's management API
publish, a naive WSGI app with a pika connection per request, a reference app
with a pika connection per thread, and raw pika in one process.  Each HTTP
scenario runs at c=16 and at c=1, ``--rounds`` times interleaved; the best
round of each counts (other work on the machine only ever slows a run down).
``--memory`` adds the 100k-request RSS check, ``--profile`` py-spy profiles
of broadcast, notify and RPC; bench/streams.py measures the event streams.
"""

import argparse
import dataclasses
import datetime
import json
import pathlib
import sys
import tempfile

from . import management, memory, profiling, rawdirect, rawpika, report, servers
from .scenarios import BEARER, Run, say

RESULTS = servers.BENCH / "results" / "latest.json"


def parse(argv):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk -d of each measurement (default 8)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c for throughput (default 16)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best counts (default 2)")
    parser.add_argument("--only", default=None, help="comma-separated scenario names: a partial run")
    parser.add_argument("--memory", action="store_true", help="RSS of Hutch's daemons over 100k broadcasts")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of broadcast, notify, rpc")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--no-streams", action="store_true", help="skip bench/streams.py")
    parser.add_argument("--gateway-root", default=str(servers.ROOT), help="serve Hutch from this tree")
    parser.add_argument(
        "--compare-root",
        default=None,
        metavar="TREE",
        help="also serve Hutch from TREE (a scratch copy with a change); its scenarios end in _b",
    )
    parser.add_argument("--responders", type=int, default=2, help="echo responder processes for RPC")
    parser.add_argument(
        "--processes", type=int, default=servers.PROCESSES, help="mod_wsgi daemon processes of every server"
    )
    parser.add_argument(
        "--threads", type=int, default=servers.THREADS, help="threads per daemon process of every server"
    )
    parser.add_argument("--output", default=None, help="the run's JSON (default bench/results/latest.json)")
    return parser.parse_args(argv)


def best(loads):
    return max(loads, key=lambda load: load.requests_per_s)


def measure(run, scenarios, args):
    """Warm each scenario up, then ``rounds`` interleaved rounds at c=16 and c=1."""
    for scenario in scenarios.values():
        scenario.check()
        scenario.load(args.connections, 2)
        for queue in scenario.purge:
            run.housekeeper.purge(queue)
    for server, root in ((run.hutch, args.gateway_root), (run.hutch_b, args.compare_root)):
        if server is not None:
            loaded = server.loaded_from()
            if loaded is None:
                say(f"{server.url}: which tree it imports hutch from is not checked (needs py-spy: .[bench])")
            else:
                say(f"{server.url} imports hutch from {loaded}")
            if loaded is not None and pathlib.Path(loaded) != pathlib.Path(root).resolve():
                raise RuntimeError(f"{server.url} imports hutch from {loaded}, not from {root}")
    loads = {name: {"c16": [], "c1": []} for name in scenarios}
    for number in range(1, args.rounds + 1):
        for name, scenario in scenarios.items():
            for key, connections in (("c16", args.connections), ("c1", 1)):
                load = scenario.load(connections, args.seconds)
                loads[name][key].append(load)
                say(
                    f"round {number} {name:<18} c={connections:<3} {load.requests_per_s:>8.0f} req/s  "
                    f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms  failed {load.failed}"
                )
            for queue in scenario.purge:
                run.housekeeper.purge(queue)
    results = {}
    for name, scenario in scenarios.items():
        results[name] = {"label": scenario.label}
        for key, runs in loads[name].items():
            results[name][key] = dataclasses.asdict(best(runs))
            results[name][key]["failed"] = sum(load.failed for load in runs)
            results[name][key]["rounds_requests_per_s"] = [load.requests_per_s for load in runs]
    return results


def measure_raw_pika(run, seconds):
    p = run.prefix
    exchange, queue = f"{p}.rawconfirm", f"{p}.rawconfirm.q"
    run.housekeeper.fanout_with_queue(exchange, queue, durable=True)
    run.housekeeper.remember(exchanges=[f"{p}.raw"])
    results = {
        "raw pika publish, no confirms (1 thread)": rawpika.publish_without_confirms(f"{p}.raw", seconds),
        "raw pika publish + confirm each (1 thread)": rawpika.publish_with_confirms(exchange, seconds),
        "raw pika RPC round trip (1 thread)": rawpika.rpc_round_trip(f"{p}.rpc", "echo", seconds),
        "Hutch's direct path, publish + confirm each (1 thread)": rawdirect.publish_with_confirms(
            exchange, seconds
        ),
        "Hutch's direct path, RPC round trip (1 thread)": rawdirect.rpc_round_trip(
            f"{p}.rpc", "echo", seconds
        ),
    }
    run.housekeeper.purge(queue)
    for name, figures in results.items():
        say(f"{name}: {figures['requests_per_s']:.0f}/s  p50 {figures['p50_ms']:.3f} ms")
    return results


def measure_streams(run):
    """Event streams are served by the event servers ``hutch serve`` starts beside mod_wsgi, which
    this run's servers (mod_wsgi-express alone) do not have: bench/streams.py measures them."""
    say("event streams: not measured here; bench/streams.py starts gateways with their event servers")
    return None


def profile(run, scenarios, seconds):
    directory = pathlib.Path(tempfile.gettempdir()) / "hutch-bench-profiles" / run.id
    directory.mkdir(parents=True, exist_ok=True)
    pids = run.hutch.daemon_pids()
    results = {}
    for name in ("broadcast", "notify", "rpc"):
        scenario = scenarios[name]
        outputs = [directory / f"{name}-{pid}.txt" for pid in pids]
        say(f"profiling {name} with py-spy ({seconds} s, pids {pids})")
        load = profiling.record(pids, scenario.url, scenario.authorization, seconds, outputs)
        for queue in scenario.purge:
            run.housekeeper.purge(queue)
        summary = profiling.summarize(outputs, load.requests)
        summary["requests_per_s_while_profiled"] = load.requests_per_s
        summary["raw_files"] = [str(path) for path in outputs]
        results[name] = summary
    return results


def print_profile(name, summary):
    print(
        f"\nprofile: {name} ({summary['samples']} samples holding the GIL over {summary['requests']} "
        f"requests; Python CPU ms/request: {summary['python_cpu_ms_per_request']})"
    )
    print("  own time:")
    for row in summary["top_own"]:
        print(f"    {row['percent']:>5.1f}%  {row['function']}")
    print("  inclusive (gateway code only):")
    for row in summary["top_inclusive_gateway"]:
        print(f"    {row['percent']:>5.1f}%  {row['function']}")


def print_report(document):
    print()
    print(report.table(document["scenarios"], document["raw_pika"]))
    print()
    print(report.cpu_table(document["scenarios"]))
    print()
    print(report.target_lines(document["targets"]))
    if document.get("parts"):
        print()
        print(report.parts_lines(document["parts"]))
    if document.get("streams"):
        print(f"\nevent streams: {json.dumps(document['streams'])}")
    if document.get("memory"):
        found = document["memory"]
        print(f"\nmemory (RSS KiB per daemon at N requests): {json.dumps(found['at'])}")
        print(
            f"growth over the run: {found['growth_kib']} KiB; "
            f"over the second half: {found['growth_second_half_kib']} KiB"
        )
    for name, summary in (document.get("profile") or {}).items():
        print_profile(name, summary)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    output = pathlib.Path(args.output) if args.output else RESULTS
    if args.only and not args.output:
        output = pathlib.Path(tempfile.gettempdir()) / "hutch-bench-partial.json"
    say("enabling the management plugin (idempotent) and waiting for its API")
    rabbitmq_version = management.enable()
    from .machine import describe

    document = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run", *argv]),
        "machine": describe(rabbitmq_version),
        "wrk": f"wrk -t1 -c{args.connections} (and -c1) -d{args.seconds}s --latency -s bench/lua/post.lua",
        "rounds": args.rounds,
    }
    servers.PROCESSES, servers.THREADS = args.processes, args.threads  # the same for every server
    run = Run(args.gateway_root, args.compare_root, args.responders)
    document["run_id"] = run.id
    try:
        run.start()
        document["servers"] = {server.name: ["mod_wsgi-express", *server.arguments] for server in run.servers}
        scenarios = every = run.scenarios()
        if args.only:
            scenarios = {name: every[name] for name in args.only.split(",")}
        say(f"run {run.id}: {len(scenarios)} scenarios x {args.rounds} rounds x (c={args.connections}, c=1)")
        document["scenarios"] = measure(run, scenarios, args)
        document["raw_pika"] = {} if args.only else measure_raw_pika(run, min(args.seconds, 3))
        document["streams"] = None if args.only or args.no_streams else measure_streams(run)
        if args.memory:
            say(f"memory: {args.memory_requests} broadcasts")
            url = f"{run.hutch.url}/broadcast/{run.prefix}.bcast"
            document["memory"] = memory.measure(run.hutch, url, BEARER, args.memory_requests)
        if args.profile:
            document["profile"] = profile(run, every, args.profile_seconds)
    finally:
        run.close()
    document["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document["targets"] = report.targets(document["scenarios"])
    document["parts"] = report.parts(document["scenarios"])
    print_report(document)
    report.write_json(output, document)
    print(f"\nJSON: {output}")
    return 0 if all(row["pass"] for row in document["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
