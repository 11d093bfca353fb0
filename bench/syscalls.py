"""System calls per request, in process: ``strace -c -f`` over N sequential requests.

``python -m bench.syscalls [--root TREE] [--route broadcast|notify|rpc] [--requests N] [--ini-line 'k = v']``
builds the WSGI stack as bench/micro.py does, warms it up, attaches strace
to every thread of this process, makes N requests one after the other and
prints the calls per request of each system call (the request threads' and
the AMQP threads' together; for rpc, two echo responders in their own
processes answer, and their system calls are not counted).  Run it under ``flock -x /work/heavy.lock`` and
compare trees or ``publisher`` settings side by side.
"""

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from .micro import BENCH, call, environ_for


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(BENCH.parent), help="the tree whose hutch/ and apps/ to load")
    parser.add_argument("--route", default="broadcast", choices=("broadcast", "notify", "rpc"))
    parser.add_argument("--target", default=None, help="the exchange")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--ini-line", action="append", default=[], help="add 'key = value' to [app:main]")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from paste.deploy import loadapp

    from .servers import write_gateway_ini

    ini = write_gateway_ini(tempfile.mkdtemp(prefix="hutch-syscalls-"), root)
    if args.ini_line:
        text = ini.read_text().replace("[app:main]\n", "[app:main]\n" + "\n".join(args.ini_line) + "\n", 1)
        ini.write_text(text)
    application = loadapp(f"config:{ini}")
    exchange = args.target or f"bench.syscalls.{args.route}"
    sink = exclusive_queue(exchange) if args.route == "notify" else None  # notify needs a bound queue
    responders = echo_responders(exchange) if args.route == "rpc" else []
    path = f"/rpc/{exchange}/echo" if args.route == "rpc" else f"/{args.route}/{exchange}"
    template = environ_for(path)
    for _ in range(300):
        call(application, template)
    summary = pathlib.Path(tempfile.mkdtemp(prefix="hutch-strace-")) / "summary"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", str(summary), "-p", str(os.getpid())])
    time.sleep(1.5)  # attached to every thread by now
    started = time.perf_counter()
    for _ in range(args.requests):
        call(application, template)
    elapsed = time.perf_counter() - started
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    application.gateway.broker.close()
    if sink is not None:
        sink.close()  # its exclusive queue goes with it
    for responder in responders:
        responder.terminate()
        responder.wait(10)
    counts = parse_summary(summary.read_text())
    per_request = {name: calls / args.requests for name, calls in counts.items()}
    label = " ".join([str(root), args.route, *args.ini_line])
    print(f"{label}: {args.requests} requests in {elapsed:.1f} s under strace; system calls per request:")
    for name, value in sorted(per_request.items(), key=lambda item: -item[1]):
        if value >= 0.05:
            print(f"  {name:<16} {value:6.2f}")
    print(f"  {'total':<16} {sum(per_request.values()):6.2f}")


def exclusive_queue(exchange):
    """A connection holding an exclusive queue bound to the notify ``exchange`` (declared as Hutch does)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    queue = channel.queue_declare("", exclusive=True, arguments={"x-max-length": 1000}).method.queue
    channel.queue_bind(queue, exchange)
    return connection


def echo_responders(exchange, count=2):
    """``count`` echo responders (examples/rpc_responder.py) on ``exchange``/echo, each ready."""
    command = [sys.executable, str(BENCH.parent / "examples" / "rpc_responder.py"), "--answer", "echo"]
    command += ["--exchange", exchange, "--routing-key", "echo"]
    responders = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    for responder in responders:
        if responder.stdout.readline().strip() != "ready":
            raise SystemExit("an echo responder did not start")
    return responders


def parse_summary(text):
    """``strace -c``'s table as {syscall: calls}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


if __name__ == "__main__":
    main()
