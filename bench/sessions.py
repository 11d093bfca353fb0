"""What a dashboard request pays for its session in Redis, next to a cookie session, in one run.

``python -m bench.sessions [--seconds S] [--rounds R] [--threads N]`` builds
two gateway stacks that differ only in ``session.type`` (``cookie``, and
``ext:redis`` on the local Redis, database 1), logs a browser in to each,
then calls ``GET /dashboard/{exchange}`` with that session cookie (no
``Authorization``) from N threads for S seconds, the two stacks back to
back in each of R rounds (order alternating).  It prints the median µs per
request of each, the median of the per-round difference and ratio (a paired
measure: a loaded machine slows both of a pair alike), and for reference the latency of a bare Redis GET + SET
round trip pair (what Beaker does per request: load, then save the
accessed time) measured in the same run.  In process: no Apache, no wrk,
so the difference is the session alone.

``--served`` measures the same under ``hutch serve`` (mod_wsgi-express, 2
processes x 10 threads, one server per session type) with
``wrk -t1 -c8``, rounds alternating: requests/s and latency percentiles.
"""

import argparse
import io
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import redis

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from harness.server import GatewayServer  # noqa: E402
from hutch.settings import parse_settings  # noqa: E402
from hutch.web.app import make_app  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/1"
SECRET = "bench-only-session-secret-0123456789abcdef"
API_KEY = "bench-only-api-key-0123456789abcdef"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def raw_settings(session_type):
    raw = {
        "amqp_url": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "apps_directory": str(ROOT / "apps"),
        "templates_directory": str(ROOT / "templates"),
        "session.secret": SECRET,
        "session.type": session_type,
        "auth": "keys",
        "auth.key.bench": API_KEY,
        "auth.permissions.bench": "*",
    }
    if session_type == "ext:redis":
        raw["session.url"] = REDIS_URL
    return raw


def stack(session_type):
    return make_app(parse_settings(raw_settings(session_type), here=str(ROOT)))


def request(application, method, path, cookie=None, form=None):
    body = urllib.parse.urlencode(form).encode() if form else b""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/gateway",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_ACCEPT": "text/html",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        environ["CONTENT_LENGTH"] = str(len(body))
    if cookie:
        environ["HTTP_COOKIE"] = f"hutch_session={cookie}"
    started = []
    text = b"".join(
        application(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    )
    status, headers = started[0]
    cookies = [value for key, value in headers if key.lower() == "set-cookie"]
    new_cookie = cookies[0].split(";")[0].split("=", 1)[1] if cookies else cookie
    return status, text.decode(), new_cookie


def logged_in_cookie(application):
    status, page, cookie = request(application, "GET", "/dashboard/")
    token = TOKEN_FIELD.search(page).group(1)
    form = {"action": "login", "api_key": API_KEY, "csrf_token": token}
    status, _, cookie = request(application, "POST", "/dashboard/", cookie, form)
    assert status.startswith("303"), status
    return cookie


def measure(application, cookie, path, seconds, threads):
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(index):
        while time.monotonic() < stop:
            status, page, _ = request(application, "GET", path, cookie)
            if not status.startswith("200") or 'class="key-name">bench<' not in page:
                raise RuntimeError(f"not a logged-in page: {status}")
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return sum(counts) / elapsed


def redis_round_trips(seconds):
    """A GET and a SET of a session-sized value, one thread: µs per pair."""
    client = redis.Redis.from_url(REDIS_URL)
    key, value = f"bench:sessions:{uuid.uuid4().hex}", b"x" * 400
    pairs, stop = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < stop:
        client.get(key)
        client.set(key, value, ex=60)
        pairs += 1
    elapsed = time.monotonic() - started
    client.delete(key)
    return elapsed / pairs * 1e6


WRK_LINE = re.compile(r"Requests/sec:\s+([0-9.]+)")
WRK_PERCENTILE = re.compile(r"^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def served_login(url):
    browser = requests.Session()
    page = browser.get(f"{url}/dashboard/", headers={"Accept": "text/html"}, timeout=10)
    token = TOKEN_FIELD.search(page.text).group(1)
    form = {"action": "login", "api_key": API_KEY, "csrf_token": token}
    answer = browser.post(f"{url}/dashboard/", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.status_code
    return browser.cookies["hutch_session"]


def wrk(url, cookie, seconds):
    """``wrk -t1 -c8`` on ``url`` with the session cookie: requests/s and p50/p90/p99 in ms."""
    command = ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-H", f"Cookie: hutch_session={cookie}"]
    output = subprocess.run([*command, "-H", "Accept: text/html", url], capture_output=True, text=True).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    percentiles = {f"p{p}": float(value) * UNIT[unit] for p, value, unit in WRK_PERCENTILE.findall(output)}
    return {"req_per_s": float(WRK_LINE.search(output).group(1)), **percentiles}


def measure_served(seconds, rounds):
    """Both session types under ``hutch serve``, rounds alternating; the best round of each."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="hutch-bench-sessions-"))
    os.chmod(folder, 0o755)  # the daemons (www-data) read the inis
    servers = {}
    try:
        for kind in ("cookie", "ext:redis"):
            ini = folder / f"{kind.replace(':', '-')}.ini"
            lines = [f"{key} = {value.replace('%', '%%')}" for key, value in raw_settings(kind).items()]
            ini.write_text("[app:main]\nuse = egg:hutch\n" + "\n".join(lines) + "\n")
            os.chmod(ini, 0o644)
            servers[kind] = GatewayServer(ini, prefix="/gateway", processes=2, threads=10).start()
        cookies = {kind: served_login(server.url) for kind, server in servers.items()}
        best = {}
        for number in range(rounds):
            for kind in list(servers) if number % 2 == 0 else list(servers)[::-1]:
                result = wrk(f"{servers[kind].url}/dashboard/t.bench.sessions", cookies[kind], seconds)
                if result["req_per_s"] > best.get(kind, {}).get("req_per_s", 0):
                    best[kind] = result
        return best
    finally:
        for server in servers.values():
            server.stop()
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--served", action="store_true", help="under hutch serve with wrk instead")
    args = parser.parse_args(argv)
    if args.served:
        best = measure_served(max(3, int(args.seconds)), max(2, args.rounds // 5))
        print("GET /dashboard/{exchange} under hutch serve (2 x 10), wrk -t1 -c8, best round of each:")
        for kind, result in best.items():
            print(
                f"  session.type = {kind:9}  {result['req_per_s']:7.0f} req/s  p50 {result['p50']:.2f} ms"
                f"  p90 {result['p90']:.2f} ms  p99 {result['p99']:.2f} ms"
            )
        ratio = best["ext:redis"]["req_per_s"] / best["cookie"]["req_per_s"]
        print(f"  Redis sessions: {ratio:.2f}x the throughput of cookie sessions")
        if args.json:
            print(json.dumps(best))
        return
    stacks = {kind: stack(kind) for kind in ("cookie", "ext:redis")}
    cookies = {kind: logged_in_cookie(application) for kind, application in stacks.items()}
    path = "/dashboard/t.bench.sessions"
    kinds = list(stacks)
    rounds = []  # µs per request of each kind, measured back to back (order alternating)
    for number in range(args.rounds):
        order = kinds if number % 2 == 0 else kinds[::-1]
        micros = {
            kind: 1e6 / measure(stacks[kind], cookies[kind], path, args.seconds, args.threads)
            for kind in order
        }
        rounds.append(micros)
    pair = redis_round_trips(args.seconds)
    for application in stacks.values():
        application.gateway.broker.close()
    median = {kind: statistics.median(r[kind] for r in rounds) for kind in kinds}
    best = {kind: min(r[kind] for r in rounds) for kind in kinds}
    extra = statistics.median(r["ext:redis"] - r["cookie"] for r in rounds)
    ratio = statistics.median(r["ext:redis"] / r["cookie"] for r in rounds)
    print(f"GET {path}, logged in by session cookie, {args.threads} thread(s), {args.rounds} paired rounds:")
    for kind in kinds:
        print(f"  session.type = {kind:9}  median {median[kind]:6.0f} µs/request  best {best[kind]:6.0f}")
    print(
        f"  Redis sessions cost {extra:+.0f} µs/request (median of the rounds), "
        f"{ratio:.2f}x a cookie session's"
    )
    print(f"  reference: a bare Redis GET + SET pair {pair:.0f} µs")
    if args.json:
        print(
            json.dumps(
                {
                    "median_us": median,
                    "best_us": best,
                    "extra_us": extra,
                    "ratio": ratio,
                    "redis_get_set_us": pair,
                }
            )
        )


if __name__ == "__main__":
    main()
