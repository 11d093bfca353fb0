"""The load generator: wrk POSTing a small body at a fixed concurrency.

Every HTTP scenario goes through ``run_wrk`` with the same Lua script
(lua/post.lua), which prints wrk's summary and latency percentiles as one
JSON line.
"""

import dataclasses
import json
import os
import pathlib
import subprocess

LUA = pathlib.Path(__file__).resolve().parent / "lua" / "post.lua"
BODY = '{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'
CONTENT_TYPE = "application/json"


@dataclasses.dataclass
class Load:
    """One wrk run's figures."""

    url: str
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: dict
    cpu_ms: dict = dataclasses.field(default_factory=dict)  # CPU ms per request by process group
    daemon_switches: float | None = None  # the gateway daemons' context switches per request

    @property
    def failed(self):
        """Requests that did not get a 2xx/3xx answer, or broke the connection."""
        return self.errors["status"] + self.errors["timeout"] + self.errors["connect"]


def run_wrk(
    url,
    connections,
    seconds,
    authorization="",
    body=BODY,
    content_type=CONTENT_TYPE,
    script=LUA,
    environ=None,
):
    """``wrk -t1 -c{connections} -d{seconds}s --latency -s post.lua url`` (``script``: another Lua)."""
    environ = {
        **os.environ,
        **(environ or {}),
        "BENCH_BODY": body,
        "BENCH_CONTENT_TYPE": content_type,
        "BENCH_AUTHORIZATION": authorization,
    }
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    figures = json.loads(line.split(" ", 1)[1])
    duration = figures["duration_us"] / 1e6
    return Load(
        url=url,
        connections=connections,
        seconds=round(duration, 3),
        requests=figures["requests"],
        requests_per_s=round(figures["requests"] / duration, 1),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        mean_ms=round(figures["mean_us"] / 1000, 3),
        errors={
            "connect": figures["connect_errors"],
            "read": figures["read_errors"],
            "write": figures["write_errors"],
            "status": figures["status_errors"],
            "timeout": figures["timeouts"],
        },
    )
