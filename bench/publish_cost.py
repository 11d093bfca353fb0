"""Client cost of one confirmed, mandatory publish through Hutch's ``Broker``: CPU and system calls.

``python -m bench.publish_cost [--root TREE] [--threads 1,8] [--publishes N]``
loads TREE's ``hutch``, publishes with ``Broker.broadcast`` (confirm mode,
``mandatory``) to a fanout exchange with one bound queue on the real broker,
and prints:

- the process's CPU µs per publish (request threads and the I/O thread
  together, ``time.process_time``) and publishes/s, from N threads calling
  for a few seconds, best of ``--repeat``;
- the system calls per publish of N sequential publishes from one thread,
  counted by ``strace -c -f`` attached to this process (strace slows the
  calls down, not their number; the I/O thread's idle timers add a few
  ``epoll_wait`` per second of the run, well under 0.01 per publish).

Without WSGI or Apache it isolates what the AMQP side and the hand-off
cost; run it for two trees (``--root``) to compare a change with its base.
"""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from .broker import AMQP_URL, Housekeeper, run_id
from .micro import measure

BENCH = pathlib.Path(__file__).resolve().parent
BODY = b'{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'
SHOWN = ("epoll_wait", "recvfrom", "sendto", "epoll_ctl", "futex")


def parse_strace_summary(text):
    """``{syscall: (calls, errors)}`` from the table ``strace -c`` writes."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) not in (5, 6) or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        calls = int(fields[3])
        errors = int(fields[4]) if len(fields) == 6 else 0
        counts[fields[-1]] = (calls, errors)
    return counts


def all_threads_traced():
    for task in pathlib.Path("/proc/self/task").iterdir():
        status = (task / "status").read_text()
        tracer = next(line for line in status.splitlines() if line.startswith("TracerPid:"))
        if tracer.split()[1] == "0":
            return False
    return True


def count_syscalls(publish, publishes):
    """Per-publish ``{syscall: (calls, errors)}`` of ``publishes`` sequential calls to ``publish``."""
    with tempfile.NamedTemporaryFile(prefix="hutch-strace-", suffix=".txt") as output:
        strace = subprocess.Popen(
            ["strace", "-c", "-f", "-p", str(os.getpid()), "-o", output.name],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not all_threads_traced():
            if time.monotonic() > deadline or strace.poll() is not None:
                strace.kill()
                raise SystemExit("strace could not attach to every thread of this process")
            time.sleep(0.05)
        for _ in range(publishes):
            publish()
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=30)
        counts = parse_strace_summary(pathlib.Path(output.name).read_text())
    return {name: (calls / publishes, errors / publishes) for name, (calls, errors) in counts.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(BENCH.parent), help="the tree whose hutch/ to load")
    parser.add_argument("--threads", default="1,8", help="comma-separated thread counts for the CPU figure")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many CPU runs per thread count")
    parser.add_argument("--publishes", type=int, default=3000, help="sequential publishes under strace")
    parser.add_argument("--no-strace", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root).resolve()
    sys.path.insert(0, str(root))
    import pika

    import hutch
    from hutch.amqp.client import Broker
    from hutch.messages import Message

    loaded = pathlib.Path(hutch.__file__).resolve().parent.parent
    if loaded != root:
        raise SystemExit(f"imported hutch from {loaded}, not from {root}")
    prefix = f"bench.{run_id()}"
    exchange, queue = f"{prefix}.syscalls", f"{prefix}.syscalls.q"
    housekeeper = Housekeeper()
    broker = Broker(AMQP_URL)
    message = Message(BODY, pika.BasicProperties(content_type="application/json", message_id="bench"))
    try:
        broker.broadcast(exchange, message)  # connects; declares the exchange as Hutch does
        housekeeper.fanout_with_queue(exchange, queue, durable=False)

        def publish():
            if not broker.broadcast(exchange, message):
                raise RuntimeError("the bound queue did not get the message")

        for _ in range(500):
            publish()
        result = {"root": str(root), "cpu": {}, "syscalls": None}
        for threads in (int(n) for n in args.threads.split(",")):
            runs = []
            for _ in range(args.repeat):
                rate, cpu_ms = measure(publish, threads, args.seconds)
                runs.append((rate, cpu_ms * 1000))
                housekeeper.purge(queue)
            result["cpu"][threads] = {
                "publishes_per_s": round(max(rate for rate, _ in runs)),
                "cpu_us_per_publish": round(min(cpu for _, cpu in runs), 1),
            }
        if not args.no_strace:
            per_publish = count_syscalls(publish, args.publishes)
            result["syscalls"] = {name: [round(c, 2), round(e, 2)] for name, (c, e) in per_publish.items()}
    finally:
        broker.close()
        housekeeper.close()
    report(result, args.json)


def report(result, as_json):
    if as_json:
        print(json.dumps(result))
        return
    print(result["root"])
    for threads, figures in result["cpu"].items():
        print(
            f"  {threads} thread(s): {figures['publishes_per_s']:,} publishes/s, "
            f"CPU {figures['cpu_us_per_publish']} µs per publish"
        )
    if result["syscalls"] is not None:
        calls = result["syscalls"]
        shown = ", ".join(
            f"{name} {calls[name][0]}" + (f" ({calls[name][1]} failed)" if calls[name][1] else "")
            for name in SHOWN
            if name in calls
        )
        total = sum(c for c, _ in calls.values())
        print(f"  system calls per publish (1 thread): {total:.1f} in all; {shown}")


if __name__ == "__main__":
    main()
