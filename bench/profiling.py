"""Where a gateway process spends its time: py-spy on one daemon under load.

py-spy samples the daemon's Python stacks (idle threads left out) while wrk
drives one route; ``summarize`` turns the collapsed stacks into the top
functions by own time and by inclusive time, and the Python CPU time per
request of the request threads and of the AMQP I/O thread.
"""

import collections
import pathlib
import re
import subprocess
import sys
import time

from .load import run_wrk

RATE = 200  # samples per second
GATEWAY_PARTS = (
    "(hutch/",
    "(broadcast.py)",
    "(notify.py)",
    "(rpc.py)",
    "(beaker/",
    "(webob/",
    "(exceptions/errormiddleware",
    "(httpexceptions",
    "(urlparser",
)
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy():
    return str(pathlib.Path(sys.executable).with_name("py-spy"))


def record(pids, url, authorization, seconds, outputs):
    """Profile every pid for ``seconds`` while wrk loads ``url``; return the wrk figures."""
    profilers = []
    for pid, output in zip(pids, outputs, strict=True):
        command = [
            py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE),
            "--function", "--gil", "--format", "raw", "--output", str(output),
        ]  # fmt: skip
        profilers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    time.sleep(1)  # let py-spy attach before the load starts
    load = run_wrk(url, 16, seconds - 2, authorization)
    for profiler, output in zip(profilers, outputs, strict=True):
        _, errors = profiler.communicate(timeout=seconds + 60)
        if profiler.returncode != 0 or not pathlib.Path(output).exists():
            raise RuntimeError(f"py-spy failed: {errors}")
    return load


def short(frame):
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/", "/tmp/hutch-exp/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def is_gateway_frame(name):
    """Hutch's own code, its app modules and the WSGI stack it chose (not pika, threading, mod_wsgi)."""
    return any(part in name for part in GATEWAY_PARTS)


def thread_kind(frames):
    text = ";".join(frames)
    if "hutch/amqp/client.py" in text and "_run" in text:
        return "amqp_io_thread"
    if "errormiddleware" in text or "gateway.wsgi" in text:
        return "request_threads"
    return "other"


def summarize(raw_files, requests, top=15):
    """Top functions by own and inclusive samples; Python CPU ms per request by thread kind.

    ``requests`` is what wrk completed while the profilers ran (they run a
    little longer than wrk, so the per-request figures are slightly high).
    """
    own = collections.Counter()
    inclusive = collections.Counter()
    kinds = collections.Counter()
    total = 0
    lines = [line for path in raw_files for line in pathlib.Path(path).read_text().splitlines()]
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        count = int(count)
        frames = [short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        kinds[thread_kind(frames)] += count

    def share(counter, keep=lambda name: True):
        rows = [(name, n) for name, n in counter.most_common() if keep(name)][:top]
        return [
            {"function": name, "samples": n, "percent": round(100 * n / max(total, 1), 1)} for name, n in rows
        ]

    per_request = {kind: round(n / RATE * 1000 / max(requests, 1), 4) for kind, n in kinds.items()}
    return {
        "samples": total,
        "requests": requests,
        "python_cpu_ms_per_request": per_request,
        "top_own": share(own),
        "top_inclusive_gateway": share(inclusive, is_gateway_frame),
    }
