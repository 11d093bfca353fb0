"""What the delivery tier counts: Prometheus metrics per subscription, and the shared state in Redis.

Metrics follow ``hutch.metrics`` (multiprocess mode: ``hutch serve`` sets
the folder before starting the delivery processes, and the gateway's
``GET /metrics`` sums them).  The state ``GET .../push`` shows (delivered,
failed attempts, last success, last failure) is summed over every process
and host in Redis; each process adds its counts every ``FLUSH`` seconds in
one pipeline rather than one round trip per message.
"""

import json
import logging
import time

import redis
from prometheus_client import Counter, Gauge, Histogram

from hutch import metrics  # noqa: F401 - at exit it marks this process dead, so its live gauges stop counting
from hutch.delivery.store import STATE

log = logging.getLogger(__name__)

FLUSH = 0.5  # seconds between a process's additions to the shared state
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

DELIVERED = Counter(
    "hutch_push_delivered_total", "Messages a receiver took (a 2xx), by subscription.", ["subscription"]
)
ATTEMPTS = Counter(
    "hutch_push_attempts_total",
    "POSTs to receivers and HTTP responders, by subscription and outcome (2xx, 4xx, 5xx, timeout, error).",
    ["subscription", "outcome"],
)
SECONDS = Histogram(
    "hutch_push_attempt_seconds",
    "Time from a POST's start to its answer, by subscription.",
    ["subscription"],
    buckets=BUCKETS,
)
DEAD = Counter(
    "hutch_push_dead_letters_total",
    "Messages moved to the dead-letter queue, by subscription.",
    ["subscription"],
)
IN_FLIGHT = Gauge(
    "hutch_push_in_flight",
    "POSTs waiting for their answer now, by subscription.",
    ["subscription"],
    multiprocess_mode="livesum",
)


class TierStats:
    def __init__(self, redis_client):
        self.redis = redis_client
        self._children = {}
        self.pending = {}  # key -> the counts and last success/failure not yet added to the store

    def children(self, key):
        """The label children of one subscription, looked up once."""
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                IN_FLIGHT.labels(key),
                DELIVERED.labels(key),
                SECONDS.labels(key),
                DEAD.labels(key),
                {},
            )
        return found

    def started(self, subscription):
        self.children(subscription.key)[0].inc()

    def finished(self, subscription):
        self.children(subscription.key)[0].dec()

    def dead(self, subscription):
        self.children(subscription.key)[3].inc()

    def record(self, subscription, outcome):
        key = subscription.key
        _in_flight, delivered, seconds, _dead, attempts = self.children(key)
        label = outcome.label
        counter = attempts.get(label)
        if counter is None:
            counter = attempts[label] = ATTEMPTS.labels(key, label)
        counter.inc()
        seconds.observe(outcome.seconds)
        entry = self.pending.setdefault(key, {"delivered": 0, "failed_attempts": 0})
        if outcome.ok:
            delivered.inc()
            entry["delivered"] += 1
            entry["last_success_at"] = time.time()
        else:
            entry["failed_attempts"] += 1
            entry["last_failure"] = outcome.failure()

    async def flush(self):
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, entry in pending.items():
                    name = STATE + key
                    for counter in ("delivered", "failed_attempts"):
                        if entry[counter]:
                            pipe.hincrby(name, counter, entry[counter])
                    if "last_success_at" in entry:
                        pipe.hset(name, "last_success_at", repr(entry["last_success_at"]))
                    if "last_failure" in entry:
                        pipe.hset(name, "last_failure", json.dumps(entry["last_failure"]))
                await pipe.execute()
        except redis.RedisError as error:  # counts only: keep them for the next flush
            log.warning("cannot add to the push state in the subscription store: %s", error)
            for key, entry in pending.items():
                merged = self.pending.setdefault(key, {"delivered": 0, "failed_attempts": 0})
                merged["delivered"] += entry["delivered"]
                merged["failed_attempts"] += entry["failed_attempts"]
                for field in ("last_success_at", "last_failure"):
                    if field in entry and field not in merged:
                        merged[field] = entry[field]
