"""The gateway's own cost per request, in process: no Apache, no wrk, less noise.

``python -m bench.micro [--root TREE] [--route broadcast|notify|rpc] [--threads N]``
builds the WSGI stack from bench/gateway.ini (with TREE's ``hutch`` and
``apps``) and calls it from N threads for a few seconds against the real
broker, then prints requests/s and the process's CPU ms per request.  Use it
to compare a scratch copy of the repo with a change against the original;
bench/run measures the real thing end to end.
"""

import argparse
import collections
import io
import pathlib
import sys
import tempfile
import threading
import time

BENCH = pathlib.Path(__file__).resolve().parent
API_KEY = "bench-only-api-key-0123456789abcdef"
BODY = b'{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'


def environ_for(path):
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/gateway",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_AUTHORIZATION": f"Bearer {API_KEY}",
        "HTTP_USER_AGENT": "bench.micro",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def call(application, template):
    environ = dict(template)
    environ["wsgi.input"] = io.BytesIO(BODY)
    status = []
    body = b"".join(application(environ, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("2"):
        raise RuntimeError(f"{status[0]} {body[:200]!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(BENCH.parent), help="the tree whose hutch/ and apps/ to load")
    parser.add_argument("--route", default="broadcast", choices=("broadcast", "notify", "rpc"))
    parser.add_argument("--target", default=None, help="exchange (broadcast, notify) or exchange/key (rpc)")
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    parser.add_argument(
        "--calls", type=int, default=0, metavar="N",
        help="instead: count Python and C function calls (all threads) over N sequential requests",
    )  # fmt: skip
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from paste.deploy import loadapp

    import hutch

    from .servers import write_gateway_ini

    ini = write_gateway_ini(tempfile.mkdtemp(prefix="hutch-micro-"), root)
    counter = CallCounter()
    if args.calls:
        counter.install()  # before the I/O thread exists, so that it is counted too
    application = loadapp(f"config:{ini}")
    target = args.target or f"bench.micro.{args.route}"
    template = environ_for(f"/{args.route}/{target}")
    call(application, template)  # connects, declares
    for _ in range(200):
        call(application, template)
    if args.calls:
        counter.counts.clear()
        for _ in range(args.calls):
            call(application, template)
        counter.uninstall()
        application.gateway.broker.close()
        python, builtin = counter.counts["call"] / args.calls, counter.counts["c_call"] / args.calls
        print(
            f"{pathlib.Path(hutch.__file__).parent.parent} {args.route}: per request "
            f"{python:.1f} Python calls, {builtin:.1f} C calls"
        )
        return
    results = [
        measure(lambda: call(application, template), args.threads, args.seconds) for _ in range(args.repeat)
    ]
    application.gateway.broker.close()
    rate = max(rate for rate, _ in results)
    cpu_ms = min(cpu_ms for _, cpu_ms in results)
    print(
        f"{pathlib.Path(hutch.__file__).parent.parent} {args.route} threads={args.threads}: "
        f"best of {args.repeat}: {rate:,.0f} req/s, CPU {cpu_ms:.3f} ms/request"
    )


class CallCounter:
    """Counts function calls in every thread: a noise-free proxy for the Python work per request."""

    def __init__(self):
        self.counts = collections.Counter()

    def profile(self, frame, event, arg):
        self.counts[event] += 1

    def install(self):
        threading.setprofile(self.profile)
        sys.setprofile(self.profile)

    def uninstall(self):
        sys.setprofile(None)
        threading.setprofile(None)


def measure(operation, threads, seconds):
    """(calls/s, process CPU ms per call) of ``threads`` threads calling ``operation`` for ``seconds``."""
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = []

    def worker(index):
        try:
            while time.monotonic() < stop:
                operation()
                counts[index] += 1
        except Exception as error:  # report, do not hang the run
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    total = sum(counts)
    return total / wall, cpu * 1000 / total


if __name__ == "__main__":
    main()
