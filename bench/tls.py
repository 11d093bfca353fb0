"""amqps:// in process: the direct publisher (TLS on memory BIOs) against pika's I/O thread, paired.

``python -m bench.tls [--ops 2000] [--rounds 3] [--threads 1,8] [--json FILE]``
starts a private RabbitMQ node with a TLS listener (``harness.tls_node``,
certificates made at start), makes two ``Broker``s on its ``amqps://`` URL in
this process, ``publisher = direct`` and ``publisher = pika`` (both live for
the whole run, so their idle threads cost both sides the same), and for
broadcast (a fanout with one bound queue), notify (a durable queue) and RPC
(two echo responder processes over TLS) runs ``--ops`` operations from 1
and 8 threads, alternating the two publishers round by round (A B, B A,
...).  Per round: process CPU µs per operation (``time.process_time``: the
request threads, the reader or I/O thread, all TLS work) and the p50
latency of one operation; reported as medians over the rounds and the
direct/pika ratio.  ``--schemes amqps,amqp`` measures the same pair over the
node's plain listener too, for reference.  Hold the machine's benchmark lock while it runs.
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import threading
import time

import pika

from harness.tls_node import TlsNode
from hutch.amqp.client import Broker
from hutch.messages import Message

from .broker import Housekeeper, Responders, run_id

BENCH = pathlib.Path(__file__).resolve().parent
BODY = b'{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'
PUBLISHERS = ("direct", "pika")


def run_round(operation, threads, ops):
    """``ops`` calls of ``operation`` split over ``threads``: (CPU µs per call, p50 ms, calls/s)."""
    each = ops // threads
    latencies = [[] for _ in range(threads)]
    errors = []
    start = threading.Barrier(threads + 1)

    def worker(index):
        mine = latencies[index]
        start.wait()
        try:
            for _ in range(each):
                began = time.perf_counter()
                operation()
                mine.append(time.perf_counter() - began)
        except Exception as error:  # report, do not hang the run
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for thread in workers:
        thread.join()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    done = [latency for mine in latencies for latency in mine]
    return cpu * 1e6 / len(done), statistics.median(done) * 1000, len(done) / wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per publisher (alternating)")
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--idioms", default="broadcast,notify,rpc")
    parser.add_argument(
        "--schemes",
        default="amqps",
        help="amqps, or amqps,amqp: the same pair over the node's plain listener",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    threads_list = [int(n) for n in args.threads.split(",")]
    idioms = args.idioms.split(",")
    schemes = args.schemes.split(",")
    prefix = f"bench.{run_id()}.tls"
    result = {
        "ops": args.ops,
        "rounds": args.rounds,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with TlsNode(tempfile.mkdtemp(prefix="hutch-bench-tls-"), prefix="hutch-bench-tls") as node:
        housekeeper = Housekeeper(node.plain_url)
        urls = {"amqps": node.url, "amqp": node.plain_url}
        brokers = {
            (scheme, name): Broker(urls[scheme], publisher=name, heartbeat=30)
            for scheme in schemes
            for name in PUBLISHERS
        }
        responders = None
        try:
            operations = {}
            broadcast_message = Message(
                BODY, pika.BasicProperties(content_type="application/json", message_id="b")
            )
            notify_message = Message(
                BODY, pika.BasicProperties(content_type="application/json", message_id="n", delivery_mode=2)
            )
            fanout, sink = f"{prefix}.b", f"{prefix}.b.q"
            durable, stored = f"{prefix}.n", f"{prefix}.n.archive"
            service = f"{prefix}.rpc"
            for broker in brokers.values():
                broker.broadcast(fanout, broadcast_message)  # connects; declares as Hutch does
            housekeeper.fanout_with_queue(fanout, sink, durable=False)
            brokers[schemes[0], "pika"].ensure_consumer_queue(durable, stored, "classic")
            housekeeper.remember([durable], [stored])
            if "rpc" in idioms:
                responders = Responders(service, "echo", count=2, url=node.url)
                housekeeper.remember([service])
            for name, broker in brokers.items():
                operations[name] = {
                    "broadcast": lambda b=broker: b.broadcast(fanout, broadcast_message) or _fail("unrouted"),
                    "notify": lambda b=broker: b.notify(durable, notify_message),
                    "rpc": lambda b=broker: b.call(service, "echo", broadcast_message, 5.0),
                }
                for idiom in idioms:  # warm: channels open, exchanges declared
                    for _ in range(200):
                        operations[name][idiom]()
            purge = {"broadcast": sink, "notify": stored}
            for idiom in idioms:
                for threads in threads_list:
                    for scheme in schemes:
                        runs = {name: [] for name in PUBLISHERS}
                        for index in range(args.rounds):
                            order = PUBLISHERS if index % 2 == 0 else PUBLISHERS[::-1]
                            for name in order:
                                operation = operations[scheme, name][idiom]
                                runs[name].append(run_round(operation, threads, args.ops))
                                if idiom in purge:
                                    housekeeper.purge(purge[idiom])
                        label = f"{scheme} {idiom} x{threads}"
                        result[label] = summarize(runs)
                        report(label, result[label])
        finally:
            if responders is not None:
                responders.stop()
            for broker in brokers.values():
                broker.close()
            housekeeper.close()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def _fail(why):
    raise RuntimeError(why)


def summarize(runs):
    figures = {}
    for name, rounds in runs.items():
        figures[name] = {
            "cpu_us": [round(cpu, 1) for cpu, _, _ in rounds],
            "p50_ms": [round(p50, 3) for _, p50, _ in rounds],
            "per_s": [round(rate) for _, _, rate in rounds],
        }
    direct, pika_ = figures["direct"], figures["pika"]
    figures["ratio"] = {
        "cpu": round(statistics.median(direct["cpu_us"]) / statistics.median(pika_["cpu_us"]), 2),
        "p50": round(statistics.median(direct["p50_ms"]) / statistics.median(pika_["p50_ms"]), 2),
        "paired_cpu": [round(a / b, 2) for a, b in zip(direct["cpu_us"], pika_["cpu_us"], strict=True)],
    }
    return figures


def report(label, figures):
    direct, pika_, ratio = figures["direct"], figures["pika"], figures["ratio"]

    def median(side, key):
        return statistics.median(side[key])

    print(
        f"{label:20} CPU µs/op direct {median(direct, 'cpu_us'):7.1f} pika {median(pika_, 'cpu_us'):7.1f}"
        f"  ratio {ratio['cpu']:.2f} {ratio['paired_cpu']}  |  p50 ms direct {median(direct, 'p50_ms'):.3f}"
        f" pika {median(pika_, 'p50_ms'):.3f} ratio {ratio['p50']:.2f}  |  per s {median(direct, 'per_s')}"
        f" / {median(pika_, 'per_s')}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
