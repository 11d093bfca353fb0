"""The wrk suites as data: which servers each starts, and a Scenario record per measured row.

A scenario POSTs its body to ``server``'s URL + ``path`` (``{p}``: the run's
``bench.<id>`` prefix, ``{p}_b`` for a compare tree's twins; ``{run}``: always
the run's own).  ``setup`` declares what it needs once per run; the exchange in
its path and its ``queue`` are deleted at the end.  ``queue`` is purged after
every measurement (``stored``: it must first hold every message answered).
``batch`` > 1 posts NDJSON batches of that many lines; ``publishers`` > 0 is
no HTTP at all but the broker's own ceiling (bench/ceiling.py) into the
scenario's exchange.  Labels are what BENCHMARKS.md's tables show.
"""

import dataclasses
import json

import requests

from .measure import BODY
from .servers import BEARER


@dataclasses.dataclass
class Scenario:
    name: str
    label: str
    server: str  # a name in the suite's servers, or "management" (RabbitMQ's API), or "broker"
    path: str = ""
    status: int = 202  # what the check by hand expects, with the JSON's "routed" where not None
    routed: bool | None = None
    queue: str = ""
    setup: object = None  # setup(run, scenario) once per run: declares
    stored: bool = False
    batch: int = 1
    publishers: int = 0
    twin: bool = False  # measured again against --compare-root's gateway (name_b, right after)

    @property
    def exchange(self):
        return self.path.split("/")[2] if self.path.count("/") >= 2 else ""


@dataclasses.dataclass
class Suite:
    servers: dict  # name -> (how: "express" or "serve", app: a name in servers.APPS, ini)
    scenarios: list
    seconds: int = 8
    rounds: int = 2
    connections: tuple = (16, 1)
    payload: str = BODY  # what each message carries
    targets: tuple = ()  # (label, numerator, denominator, factor): rate >= factor x denominator's


# --- setup hooks ----------------------------------------------------------------------------------


def fanout_queue(run, scenario):
    run.housekeeper.fanout_with_queue(scenario.exchange, scenario.queue, durable=False)


def quorum_queue(run, scenario):
    run.housekeeper.fanout_with_queue(scenario.exchange, scenario.queue, durable=True, quorum=True)


def plain_queue(run, scenario):
    run.housekeeper.queue(scenario.queue)


def consumer_queue(run, scenario):
    """``PUT /notify/{exchange}/queues/bench``: the consumer queue notify publishes to."""
    url = f"{run.servers[scenario.server].url}/notify/{scenario.exchange}/queues/bench"
    answer = requests.put(url, headers={"Authorization": BEARER}, timeout=10)
    if answer.status_code != 201:
        raise RuntimeError(f"registering the notify consumer queue: {answer.status_code} {answer.text}")


def ndjson(payload, lines):
    return (json.dumps({"body": payload, "content_type": "text/plain"}) + "\n") * lines


# --- the suites -----------------------------------------------------------------------------------

# fmt: off
S = Scenario
MAIN = Suite(
    servers={name: ("express", name, "bench") for name in ("hello", "hutch", "stack", "handoff", "naive",
                                                           "threadlocal")},
    scenarios=[
        S("hello", "hello-world WSGI", "hello", "/broadcast/{p}.hello", status=200),
        S("broadcast", "Hutch broadcast (no queue)", "hutch", "/broadcast/{p}.bcast", routed=False,
          twin=True),
        S("broadcast_queue", "Hutch broadcast (1 bound queue)", "hutch", "/broadcast/{p}.bcastq", routed=True,
          queue="{p}.bcastq.q", setup=fanout_queue, twin=True),
        S("notify", "Hutch notify (1 consumer queue, confirmed)", "hutch", "/notify/{p}.notify",
          queue="{p}.notify.bench", setup=consumer_queue, twin=True),
        S("rpc", "Hutch RPC (echo responders)", "hutch", "/rpc/{run}.rpc/echo", status=200, twin=True),
        S("management", "RabbitMQ management API publish", "management", status=200, routed=True,
          queue="{p}.management", setup=plain_queue),
        S("broadcast_stack", "part: Hutch broadcast, stack only (no AMQP)", "stack", "/broadcast/{p}.parts",
          routed=False),
        S("broadcast_handoff", "part: + hand-off to the I/O thread (no AMQP)", "handoff",
          "/broadcast/{p}.parts", routed=False),
        S("naive", "naive WSGI (pika connection per request)", "naive", "/broadcast/{p}.naive"),
        S("threadlocal", "ref: pika connection per thread, no I/O thread", "threadlocal",
          "/broadcast/{p}.threadlocal", routed=False),
    ],
    targets=(  # the hot-path issue's (the earlier benchmark issue asked notify >= 2 x, rpc >= 0.3 x)
        ("broadcast (no queue) >= 0.5 x hello-world", "broadcast", "hello", 0.5),
        ("broadcast (1 queue) >= 0.5 x hello-world", "broadcast_queue", "hello", 0.5),
        ("broadcast >= 1.3 x pika connection per thread", "broadcast", "threadlocal", 1.3),
        ("notify >= 1.8 x management API", "notify", "management", 1.8),
        ("rpc >= 0.35 x hello-world", "rpc", "hello", 0.35),
    ),
)

BATCH = Suite(
    servers={"hutch": ("express", "hutch", "bench")},
    scenarios=[
        *(S(f"{idiom}_{size}", f"{idiom}{' (quorum)' if idiom == 'notify' else ''}, batch {size}", "hutch",
            f"/{idiom}/{{p}}.{idiom[0]}/batch", status=200, routed=idiom == "broadcast" or None, batch=size,
            queue=f"{{p}}.{idiom[0]}.q", setup=quorum_queue if idiom == "notify" else fanout_queue,
            stored=idiom == "notify")
          for idiom in ("broadcast", "notify") for size in (1, 10, 100, 1000)),
        S("management", "management API publish (quorum)", "management", status=200, routed=True,
          queue="{p}.n.q", stored=True),
        *(S(f"ceiling_{n}", f"broker ceiling, {n} publisher(s)", "broker", "/-/{p}.n", queue="{p}.n.q",
            publishers=n) for n in (1, 2, 3)),
    ],
    seconds=5,
    connections=(16,),
    payload=("Hutch bulk publishing benchmark message, 200 bytes of text: " * 4)[:200],
    targets=(
        ("notify batch 100 >= 0.6 x the broker's ceiling", "notify_100", "ceiling", 0.6),
        ("notify batch 100 >= 5 x management API", "notify_100", "management", 5),
        ("broadcast batch 100 >= 30,000 msg/s", "broadcast_100", None, 30_000),
    ),
)

DEPLOYMENT = Suite(
    servers={
        "hello": ("express", "hello", "bench"),
        "A": ("express", "hutch", "bench"),
        "B": ("serve", "hutch", "production"),
        "C": ("express", "hutch", "production"),
        "D": ("serve", "hutch", "bench"),
        "E": ("express", "hutch", "nohistory"),
    },
    scenarios=[
        S("hello", "hello-world (bench/run's)", "hello", "/broadcast/{p}.deployment", status=200),
        S("A", "A bench/run's way: bench ini, bench server", "A", "/broadcast/{p}.deployment"),
        S("B", "B deployment: production.ini, hutch serve", "B", "/broadcast/{p}.deployment"),
        S("C", "C production.ini, bench server", "C", "/broadcast/{p}.deployment"),
        S("D", "D bench ini, hutch serve", "D", "/broadcast/{p}.deployment"),
        S("E", "E production.ini without events_history, bench server", "E", "/broadcast/{p}.deployment"),
    ],
    seconds=5,
    rounds=3,
    connections=(16,),
)
# fmt: on

SUITES = {"main": MAIN, "batch": BATCH, "deployment": DEPLOYMENT}
