"""Subscriptions (push) and responders (rpc), in Redis: shared by every host, durable, watched.

Why Redis: the gateway already keeps its cross-host state there (the
idempotency store, the dashboard's sessions); it gives the WSGI side a
synchronous read and an atomic create-or-update (``WATCH``/``MULTI``), and
it holds the counters every delivery process adds to, so ``GET .../push``
shows one state for the whole tier.  A RabbitMQ stream could hold the
configuration, but the gateway could not read "the latest" of it, nor add
to counters.  Redis must persist (``appendonly yes``) for a restart of
every process, Redis included, to lose nothing.

Layout (``push_store`` URL, one database):

- ``hutch:push:subscriptions``: hash, ``{kind}/{exchange}/{name}`` -> JSON
  (``kind`` ``push`` with the consumer, or ``rpc`` with the routing key);
  secrets in it are sealed (``hutch.delivery.signing``).
- ``hutch:push:version``: bumped by every change; each delivery process
  reads it every ``POLL`` second(s) and reloads the hash when it moved, so
  every host sees a change within a few seconds.
- ``hutch:push:state:{key}``: hash of counters and the last success/failure.
- ``hutch:push:retired``: set of retry queues no schedule uses any more (a PUT changed the schedule,
  or a DELETE); delivery processes delete each once it is empty (``hutch.delivery.main``).
- ``hutch:push:consuming:{process}``: JSON list of the keys that process consumes now (it expires
  ``LIVE`` s after the process last said so): ``GET .../push`` tells its consumers from others.
- ``hutch:push:processes``: the delivery processes connected to the broker, each with the time it
  last said so (every poll); they share each subscription's ``concurrency`` among themselves.
"""

import dataclasses
import json
import math
import time

import redis

from hutch.delivery import signing, topology
from hutch.errors import InvalidSubscription, SubscriptionStoreUnavailable

SUBSCRIPTIONS = "hutch:push:subscriptions"
VERSION = "hutch:push:version"
STATE = "hutch:push:state:"
RETIRED = "hutch:push:retired"  # set: retry queues to delete once empty
CONSUMING = "hutch:push:consuming:"  # + process id: JSON list of the keys it consumes (expires)
PROCESSES = "hutch:push:processes"  # sorted set: delivery process id -> when it last said it is alive
POLL = 1.0  # seconds between a delivery process's looks at VERSION
LIVE = 5.0  # seconds a delivery process counts as alive after it last said so
ROTATION_OVERLAP = 24 * 3600  # seconds the previous secret keeps signing after a rotation
DEFAULT_SCHEDULE = (1, 5, 30, 120, 600, 1800, 3600, 10800)
MAX_CONCURRENCY = 256
MAX_TIMEOUT = 300.0
MAX_DELAY = 7 * 24 * 3600.0
MAX_SCHEDULE = 32
PUSH_FIELDS = {"url", "concurrency", "timeout", "retry_schedule"}
RESPONDER_FIELDS = {"url", "concurrency"}


def retry_queues(subscription):
    """The retry queues a push subscription's schedule uses (none for a responder)."""
    if subscription is None or subscription.kind != "push":
        return set()
    return {topology.retry_queue(subscription.queue, delay) for delay in subscription.retry_schedule}


def retire(pipe, old, new):
    """In a MULTI: mark the retry queues ``old`` used and ``new`` does not; ``new``'s are in use again."""
    kept = retry_queues(new)
    dropped = retry_queues(old) - kept
    if dropped:
        pipe.sadd(RETIRED, *sorted(dropped))
    if kept:
        pipe.srem(RETIRED, *sorted(kept))


def key_of(kind, exchange, name):
    return f"{kind}/{exchange}/{name}"


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One push subscription (``kind`` push) or HTTP responder (``kind`` rpc), as stored."""

    kind: str
    exchange: str
    name: str  # the consumer (push) or the routing key (rpc)
    url: str
    concurrency: int = 8
    timeout: float = 15.0
    retry_schedule: tuple = DEFAULT_SCHEDULE
    secrets: tuple = ()  # ({"sealed": ..., "until": epoch or None}, ...): the newest first
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def key(self):
        return key_of(self.kind, self.exchange, self.name)

    @property
    def queue(self):
        """The queue it consumes: the consumer queue, or the responder's request queue."""
        return f"{self.exchange}.{self.name}" if self.kind == "push" else f"{self.exchange}.{self.name}.http"

    def to_json(self):
        return json.dumps({**dataclasses.asdict(self), "retry_schedule": list(self.retry_schedule)})

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        data["retry_schedule"] = tuple(data.get("retry_schedule", DEFAULT_SCHEDULE))
        data["secrets"] = tuple(data.get("secrets", ()))
        return cls(**data)

    def public(self):
        """The configuration as ``GET`` shows it: never a secret."""
        shown = {"url": self.url, "concurrency": self.concurrency}
        if self.kind == "push":
            shown.update(timeout=self.timeout, retry_schedule=list(self.retry_schedule))
        shown.update(created_at=iso(self.created_at), updated_at=iso(self.updated_at))
        return shown

    def signing_keys(self, sealer, now=None):
        """The HMAC keys that sign now: the current secret, and the previous one for a day after rotation."""
        now = time.time() if now is None else now
        keys = []
        for entry in self.secrets:
            if entry.get("until") is not None and entry["until"] < now:
                continue
            secret = sealer.open(entry["sealed"], self.key)
            if secret is not None:
                keys.append(signing.secret_key(secret))
        return keys


def iso(epoch):
    if not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def parse_body(data, kind):
    """The fields of a PUT body (JSON already decoded), checked; 400 ``invalid_subscription`` otherwise."""
    allowed = PUSH_FIELDS if kind == "push" else RESPONDER_FIELDS
    if not isinstance(data, dict):
        raise InvalidSubscription("The body must be a JSON object.")
    unknown = set(data) - allowed
    if unknown:
        raise InvalidSubscription(
            f"Unknown fields: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}."
        )
    if not isinstance(data.get("url"), str):
        raise InvalidSubscription("url is required (a string).")
    fields = {"url": data["url"]}
    concurrency = data.get("concurrency", 8)
    if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidSubscription(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}.")
    fields["concurrency"] = concurrency
    if kind == "push":
        timeout = data.get("timeout", 15)
        if not _number(timeout) or not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidSubscription(f"timeout must be a number of seconds, > 0 and <= {MAX_TIMEOUT:g}.")
        fields["timeout"] = float(timeout)
        schedule = data.get("retry_schedule", list(DEFAULT_SCHEDULE))
        if (
            not isinstance(schedule, list)
            or len(schedule) > MAX_SCHEDULE
            or not all(_number(delay) and 0 < delay <= MAX_DELAY for delay in schedule)
        ):
            raise InvalidSubscription(
                f"retry_schedule must be a list of at most {MAX_SCHEDULE} delays in seconds, each > 0 and"
                f" <= {MAX_DELAY:g}."
            )
        fields["retry_schedule"] = tuple(schedule)
    return fields


def _number(value):
    return type(value) in (int, float) and math.isfinite(value)


class SubscriptionStore:
    """The gateway's side (synchronous): create, update, read, delete, rotate."""

    def __init__(self, url, sealer, socket_timeout=2.0):
        self.sealer = sealer
        self.redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, decode_responses=True
        )

    def _do(self, operation):
        try:
            return operation()
        except redis.RedisError as error:
            raise SubscriptionStoreUnavailable(f"The subscription store is unavailable: {error}.") from None

    def get(self, kind, exchange, name):
        text = self._do(lambda: self.redis.hget(SUBSCRIPTIONS, key_of(kind, exchange, name)))
        return None if text is None else Subscription.from_json(text)

    def all(self):
        texts = self._do(lambda: self.redis.hgetall(SUBSCRIPTIONS))
        return sorted((Subscription.from_json(text) for text in texts.values()), key=lambda s: s.key)

    def put(self, kind, exchange, name, fields):
        """Create (with a new secret) or replace the configuration (keeping the secrets).

        Returns ``(subscription, secret)``: ``secret`` only when created.
        """
        key = key_of(kind, exchange, name)

        def write(pipe):
            text = pipe.hget(SUBSCRIPTIONS, key)
            now = time.time()
            secret = None
            old = None if text is None else Subscription.from_json(text)
            if text is None:
                secret = signing.new_secret()
                entry = {"sealed": self.sealer.seal(secret, key), "until": None}
                subscription = Subscription(
                    kind, exchange, name, secrets=(entry,), created_at=now, updated_at=now, **fields
                )
            else:
                subscription = dataclasses.replace(old, updated_at=now, **fields)
            pipe.multi()
            pipe.hset(SUBSCRIPTIONS, key, subscription.to_json())
            retire(pipe, old, subscription)
            pipe.incr(VERSION)
            return subscription, secret

        return self._do(lambda: self.redis.transaction(write, SUBSCRIPTIONS, value_from_callable=True))

    def rotate(self, kind, exchange, name):
        """A new secret; the previous one keeps signing for ``ROTATION_OVERLAP``.  None if no subscription."""
        key = key_of(kind, exchange, name)

        def write(pipe):
            text = pipe.hget(SUBSCRIPTIONS, key)
            if text is None:
                return None
            subscription = Subscription.from_json(text)
            now = time.time()
            secret = signing.new_secret()
            kept = [{**entry, "until": now + ROTATION_OVERLAP} for entry in subscription.secrets[:1]]
            entries = ({"sealed": self.sealer.seal(secret, key), "until": None}, *kept)
            pipe.multi()
            pipe.hset(
                SUBSCRIPTIONS,
                key,
                dataclasses.replace(subscription, secrets=entries, updated_at=now).to_json(),
            )
            pipe.incr(VERSION)
            return secret

        return self._do(lambda: self.redis.transaction(write, SUBSCRIPTIONS, value_from_callable=True))

    def delete(self, kind, exchange, name):
        key = key_of(kind, exchange, name)

        def write(pipe):
            text = pipe.hget(SUBSCRIPTIONS, key)
            pipe.multi()
            pipe.hdel(SUBSCRIPTIONS, key)
            if text is not None:
                retire(pipe, Subscription.from_json(text), None)
            pipe.delete(STATE + key)
            pipe.incr(VERSION)
            return text is not None

        return self._do(lambda: self.redis.transaction(write, SUBSCRIPTIONS, value_from_callable=True))

    def state(self, key):
        """``delivered``, ``failed_attempts``, ``last_success_at``, ``last_failure``, summed over the tier."""
        raw = self._do(lambda: self.redis.hgetall(STATE + key))
        failure = raw.get("last_failure")
        return {
            "delivered": int(raw.get("delivered", 0)),
            "failed_attempts": int(raw.get("failed_attempts", 0)),
            "last_success_at": iso(float(raw["last_success_at"])) if raw.get("last_success_at") else None,
            "last_failure": json.loads(failure) if failure else None,
        }

    def delivery_consumers(self, key):
        """How many live delivery processes consume ``key`` now (as they said within ``LIVE`` s)."""

        def read():
            processes = self.redis.zrangebyscore(PROCESSES, time.time() - LIVE, "+inf")
            return self.redis.mget([CONSUMING + process for process in processes]) if processes else []

        return sum(1 for text in self._do(read) if text is not None and key in json.loads(text))

    def close(self):
        self.redis.close()
