"""The gateway's Prometheus metrics: every definition, and the small API the code calls.

prometheus-client's multiprocess mode gives one view over all the processes
of a host: ``hutch serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (an empty
folder) before Apache starts, each process (mod_wsgi daemons, the event
server) writes its values to memory-mapped files there, and ``GET /metrics``
sums them.  The variable must be set before ``prometheus_client`` is first
imported in a process.  Without it (WebTest, a single process) the values
live in this process's default registry.

Callers use the functions below, never the metric objects, so a metric can
change without touching the broker client or the apps.  Each costs what
prometheus-client costs: a dict lookup and an addition (an mmap write in
multiprocess mode).
"""

import atexit
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

from hutch.metrics_env import MULTIPROCESS_ENV

# prometheus_client chose its mode when it was imported, from this variable: keep to that choice.
MULTIPROCESS_DIRECTORY = os.environ.get(MULTIPROCESS_ENV) or None

# Latency buckets in seconds: a publish confirm or an RPC takes around a millisecond on a healthy
# broker; anything near publish_timeout or rpc_max_timeout is a problem.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "hutch_http_requests_total",
    "HTTP requests answered, by app (the first path segment: broadcast, notify, rpc, ...) and status.",
    ["app", "status"],
)
REQUEST_SECONDS = Histogram(
    "hutch_http_request_seconds",
    "Time from a request's arrival to its response status, by app.",
    ["app"],
    buckets=LATENCY_BUCKETS,
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "hutch_publish_confirm_seconds",
    "Time from handing a message to the I/O thread to the broker's publisher confirm, by idiom.",
    ["idiom"],
    buckets=LATENCY_BUCKETS,
)
UNROUTABLE = Counter(
    "hutch_unroutable_total",
    "Confirmed messages that reached no queue, by idiom (a broadcast nobody heard; a notify answered 409).",
    ["idiom"],
)
RPC_SECONDS = Histogram(
    "hutch_rpc_seconds",
    "Time from publishing an RPC request to its reply.",
    buckets=LATENCY_BUCKETS,
)
RPC_TIMEOUTS = Counter("hutch_rpc_timeouts_total", "RPC calls answered 504: no reply within the timeout.")
RPC_NO_RESPONDER = Counter(
    "hutch_rpc_no_responder_total",
    "RPC calls answered 503 no_responder: nothing bound for the routing key, or no such exchange.",
)
# A process holds two broker connections, by ``connection``: "pika" (pika's I/O thread: declarations
# and subscriptions; every publish with publisher = pika) and "direct" (the direct publisher's:
# broadcast, notify and RPC with publisher = direct, the default).
BROKER_CONNECTED = Gauge(
    "hutch_broker_connected",
    "Gateway processes with an open broker connection, by connection (pika, direct).",
    ["connection"],
    multiprocess_mode="livesum",
)
BROKER_BLOCKED = Gauge(
    "hutch_broker_blocked",
    "Gateway processes whose connection the broker has blocked (resource alarm), by connection.",
    ["connection"],
    multiprocess_mode="livesum",
)
BROKER_RECONNECTS = Counter(
    "hutch_broker_reconnects_total",
    "Broker connections opened again after a process had lost one, by connection.",
    ["connection"],
)
BROKER_CONNECT_FAILURES = Counter(
    "hutch_broker_connect_failures_total",
    "Attempts to connect to the broker that failed, by connection.",
    ["connection"],
)
EVENT_STREAMS = Gauge(
    "hutch_event_streams_open",
    "Server-Sent Event streams open now (GET /events).",
    multiprocess_mode="livesum",
)
IDEMPOTENT_REPLAYS = Counter(
    "hutch_idempotent_replays_total",
    "Requests answered from a remembered answer (Idempotent-Replayed: true), by idiom.",
    ["idiom"],
)

CONNECTIONS = ("pika", "direct")  # the ``connection`` label's values
IDIOMS = ("broadcast", "notify")  # the ``idiom`` label's values

# Every labelled series that exists before its first event is exported from the start, at zero: a
# dashboard or an alert (``hutch_broker_connected < 1``) sees a value, not an absent series.
for _connection in CONNECTIONS:
    for _metric in (BROKER_CONNECTED, BROKER_BLOCKED, BROKER_RECONNECTS, BROKER_CONNECT_FAILURES):
        _metric.labels(_connection)
for _idiom in IDIOMS:
    for _metric in (UNROUTABLE, IDEMPOTENT_REPLAYS):
        _metric.labels(_idiom)

_request_children = {}  # (app, status) -> the label children, looked up once
_publish_children = {}  # idiom -> the label children


# --- the API ---------------------------------------------------------------------


def request_answered(app, status, seconds):
    """One HTTP request got its status; ``app`` is a known app segment or ``other``."""
    key = (app, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            REQUESTS.labels(app, str(status)),
            REQUEST_SECONDS.labels(app),
        )
    children[0].inc()
    children[1].observe(seconds)


def publish_confirmed(idiom, seconds, routed):
    """On the I/O thread: the broker confirmed a message (``routed``: a queue got it)."""
    children = _publish_children.get(idiom)
    if children is None:
        children = (PUBLISH_CONFIRM_SECONDS.labels(idiom), UNROUTABLE.labels(idiom))
        _publish_children[idiom] = children
    children[0].observe(seconds)
    if not routed:
        children[1].inc()


def publish_confirmed_many(idiom, seconds, count, unrouted):
    """A batch's ``count`` messages confirmed ``seconds`` after they were sent, ``unrouted`` of them
    reaching no queue: as ``count`` calls of ``publish_confirmed``, at the cost of one.  A histogram
    has no weighted observe; ``count`` equal observations add ``count`` to one bucket and
    ``count * seconds`` to the sum (tests/unit/test_batch_metrics.py holds it to the loop)."""
    if not count:
        return
    children = _publish_children.get(idiom)
    if children is None:
        publish_confirmed(idiom, seconds, True)
        children, count = _publish_children[idiom], count - 1
    histogram = children[0]
    histogram._sum.inc(seconds * count)
    for bound, bucket in zip(histogram._upper_bounds, histogram._buckets, strict=True):
        if seconds <= bound:
            bucket.inc(count)
            break
    if unrouted:
        children[1].inc(unrouted)


def rpc_replied(seconds):
    RPC_SECONDS.observe(seconds)


def rpc_timed_out():
    RPC_TIMEOUTS.inc()


def rpc_no_responder():
    RPC_NO_RESPONDER.inc()


def broker_connected(connection, reconnect):
    """A ``connection`` ("pika" or "direct") opened; ``reconnect`` when its client had one before.

    A count, not a flag: ``broker_disconnected`` follows only a connection that opened, and a
    process holding several clients (tests) must not read 0 while one is up.
    """
    BROKER_CONNECTED.labels(connection).inc()
    if reconnect:
        BROKER_RECONNECTS.labels(connection).inc()


def broker_disconnected(connection):
    BROKER_CONNECTED.labels(connection).dec()
    BROKER_BLOCKED.labels(connection).set(0)


def broker_connect_failed(connection):
    BROKER_CONNECT_FAILURES.labels(connection).inc()


def broker_blocked(connection, blocked):
    BROKER_BLOCKED.labels(connection).set(1 if blocked else 0)


def event_stream_opened():
    """For the event server: a stream started (pair it with ``event_stream_closed``)."""
    EVENT_STREAMS.inc()


def event_stream_closed():
    EVENT_STREAMS.dec()


def idempotent_replay(idiom):
    """For the idempotency layer: an answer was replayed instead of publishing again."""
    IDEMPOTENT_REPLAYS.labels(idiom).inc()


# --- exposition ------------------------------------------------------------------


def exposition(accept=""):
    """``(body, content type)`` over every process of this server, in the format ``accept`` asks
    for (OpenMetrics, or Prometheus text by default), as prometheus-client negotiates it."""
    if MULTIPROCESS_DIRECTORY:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIRECTORY)
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def _forget_this_process():
    """At exit: this process's live gauges (connected, streams) no longer count."""
    if MULTIPROCESS_DIRECTORY and os.path.isdir(MULTIPROCESS_DIRECTORY):
        multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIRECTORY)


atexit.register(_forget_this_process)
