"""Idempotent retries: a repeated ``Idempotency-Key`` gets the first answer, and publishes nothing.

The store is Redis, shared by every gateway process and host.  Per request
carrying an ``Idempotency-Key`` (broadcast and notify):

1. ``SET key pending NX GET PX lease`` claims the key atomically, or
   returns what another request holds there, in one round trip (Redis 7).
   The winner publishes.  The lease outlives the longest publish, so a
   claim left by a process that died mid-publish frees itself.
2. A 2xx answer (status, body, Content-Type) replaces the claim for
   ``idempotency_ttl`` seconds; a failed attempt (an error or a non-2xx
   answer) deletes the claim, so a retry can publish.  Both only touch the
   claim they own (a compare-and-set script), never a later one.
3. A duplicate that finds a claim waits, at most ``wait`` seconds, for the
   answer and replays it with ``Idempotent-Replayed: true``; if the first
   attempt failed meanwhile, the duplicate claims and publishes itself; if
   the first is still publishing at the bound: 409 ``idempotency_in_flight``.

The key is scoped by idiom, API key name (``anonymous`` with auth off) and
exchange.  A key reused with another body or Content-Type is a 422, never a
replay of an unrelated answer.  When Redis cannot be reached a keyed request
is refused with 503 and Retry-After (publishing could store a duplicate);
requests without the header never touch Redis.
"""

import dataclasses
import hashlib
import json
import logging
import time
import uuid

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from webob import Response

from hutch import metrics
from hutch.amqp.handoff import GRACE
from hutch.auth.policy import ENVIRON_KEY
from hutch.errors import IdempotencyInFlight, IdempotencyKeyReused, IdempotencyUnavailable

log = logging.getLogger(__name__)

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED = ("Idempotent-Replayed", "true")
ANONYMOUS = "anonymous"
KEY_PREFIX = "hutch:idempotency:"
LEASE_MARGIN = 10.0  # seconds a claim outlives the longest a publish may take
POLL_FIRST, POLL_MAX = 0.005, 0.1  # seconds between looks at a claim held by another request

# Replace or delete the claim only while it is still ours (a lapsed lease may have a new owner).
OURS = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
COMPLETE = OURS + "return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end"
RELEASE = OURS + "return redis.call('DEL', KEYS[1]) end return 0"


class IdempotencyStore:
    """The answers of keyed requests, in Redis; ``once`` runs a publish at most once per key."""

    enabled = True

    def __init__(self, url, ttl, lease, wait, retry_after, socket_timeout=2.0):
        self.ttl_ms = int(ttl * 1000)
        self.lease_ms = int(lease * 1000)
        self.wait = wait
        self.retry_after = retry_after
        # One quick retry covers a pooled connection that a Redis restart closed; no long back-off:
        # a client waiting on a dead Redis should get its 503 at once.
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            decode_responses=True,
        )
        self._complete = self.redis.register_script(COMPLETE)
        self._release = self.redis.register_script(RELEASE)

    def once(self, environ, idiom, exchange, message, publish):
        """The answer to a keyed request: ``publish()``'s, or the first one's replayed."""
        key = scoped_key(environ, idiom, exchange)
        if key is None:
            return publish()
        fingerprint = fingerprint_of(message)
        deadline = time.monotonic() + self.wait
        pause = POLL_FIRST
        while True:
            claim = json.dumps({"state": "pending", "owner": uuid.uuid4().hex, "fingerprint": fingerprint})
            found = self._claim_or_get(key, claim)
            if found is None:
                return self._publish_as_owner(key, claim, fingerprint, publish)
            if found.get("fingerprint") != fingerprint:
                raise IdempotencyKeyReused()
            if found["state"] == "done":
                metrics.idempotent_replay(idiom)
                return replay(found)
            if time.monotonic() >= deadline:
                raise IdempotencyInFlight(retry_after=self.retry_after)
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_MAX)

    def _claim_or_get(self, key, claim):
        """None when ``claim`` took the key, else what the key holds: one ``SET NX GET`` (Redis 7)."""
        try:
            text = self.redis.set(key, claim, nx=True, px=self.lease_ms, get=True)
            return None if text is None else json.loads(text)
        except redis.RedisError as error:
            log.warning("idempotency store unavailable: %s", error)
            raise IdempotencyUnavailable(retry_after=self.retry_after) from None

    def _publish_as_owner(self, key, claim, fingerprint, publish):
        try:
            response = publish()
        except BaseException:
            self._forget(key, claim)
            raise
        if not 200 <= response.status_code < 300:
            self._forget(key, claim)
            return response
        answer = {
            "state": "done",
            "fingerprint": fingerprint,
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type", "application/json"),
            "body": response.body.decode("utf-8"),
        }
        try:
            self._complete(keys=[key], args=[claim, json.dumps(answer), self.ttl_ms])
        except redis.RedisError as error:
            # The message is out: its answer is the truth.  The claim lapses after its lease;
            # a retry after that would publish again.
            log.warning("published, but could not store the answer for a retry: %s", error)
        return response

    def _forget(self, key, claim):
        """Let a retry publish: drop our claim (its lease frees it anyway if Redis is down now)."""
        try:
            self._release(keys=[key], args=[claim])
        except redis.RedisError as error:
            log.warning("could not release an idempotency claim; it lapses with its lease: %s", error)

    def close(self):
        self.redis.close()

    # -- a batch's lines, each with its own key (``hutch.web.bulk``) ---------------------------------

    def claim_each(self, environ, idiom, exchange, keyed):
        """Claim the keys of a batch's lines, ``{index: (idempotency_key, message)}``, as ``once``
        does for one request, with one pipelined round trip a look.  Returns ``{index: outcome}``:
        a ``Claim`` (publish it), a stored answer (replay it) or the line's ``IdempotencyError``
        (422 key reused, 409 still in flight after ``wait``).  Redis down: 503 for the batch."""
        scope = f"{KEY_PREFIX}{idiom}/{environ.get(ENVIRON_KEY) or ANONYMOUS}/{exchange}/"
        waiting = {index: (scope + key, fingerprint_of(message)) for index, (key, message) in keyed.items()}
        outcomes = {}
        deadline = time.monotonic() + self.wait
        pause = POLL_FIRST
        while True:
            claims = {
                index: json.dumps({"state": "pending", "owner": uuid.uuid4().hex, "fingerprint": fingerprint})
                for index, (_key, fingerprint) in waiting.items()
            }
            try:
                pipe = self.redis.pipeline(transaction=False)
                for index, (key, _fingerprint) in waiting.items():
                    pipe.set(key, claims[index], nx=True, px=self.lease_ms, get=True)
                found = pipe.execute()
            except redis.RedisError as error:
                log.warning("idempotency store unavailable: %s", error)
                self.settle_each({i: o for i, o in outcomes.items() if isinstance(o, Claim)}, {})
                raise IdempotencyUnavailable(retry_after=self.retry_after) from None
            still = {}
            for (index, (key, fingerprint)), text in zip(waiting.items(), found, strict=True):
                answer = None if text is None else json.loads(text)
                if answer is None:
                    outcomes[index] = Claim(key, claims[index])
                elif answer.get("fingerprint") != fingerprint:
                    outcomes[index] = IdempotencyKeyReused()
                elif answer["state"] == "done":
                    metrics.idempotent_replay(idiom)
                    outcomes[index] = answer
                else:
                    still[index] = (key, fingerprint)
            waiting = still
            if not waiting:
                return outcomes
            if time.monotonic() >= deadline:
                outcomes.update(
                    {index: IdempotencyInFlight(retry_after=self.retry_after) for index in waiting}
                )
                return outcomes
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_MAX)

    def settle_each(self, claims, answers):
        """Store ``answers[index]`` (status, JSON body text) for the claims that published, release
        the others, in one round trip; only claims still ours (as ``once`` does)."""
        if not claims:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for index, claim in claims.items():
                answer = answers.get(index)
                if answer is None:
                    self._release(keys=[claim.key], args=[claim.owner], client=pipe)
                else:
                    status, body = answer
                    stored = {
                        "state": "done",
                        "fingerprint": json.loads(claim.owner)["fingerprint"],
                        "status": status,
                        "content_type": "application/json",
                        "body": body,
                    }
                    self._complete(
                        keys=[claim.key], args=[claim.owner, json.dumps(stored), self.ttl_ms], client=pipe
                    )
            pipe.execute()
        except redis.RedisError as error:
            log.warning("could not store or release a batch's idempotency claims; they lapse: %s", error)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A batch line's key, claimed by this request (``owner``: the claim's text)."""

    key: str
    owner: str


class NoIdempotency:
    """``idempotency_url`` unset: every request publishes (Idempotency-Key is only the message_id)."""

    enabled = False

    def once(self, environ, idiom, exchange, message, publish):
        return publish()

    def claim_each(self, environ, idiom, exchange, keyed):
        return {}

    def settle_each(self, claims, answers):
        pass

    def close(self):
        pass


def scoped_key(environ, idiom, exchange):
    """``hutch:idempotency:{idiom}/{api key name}/{exchange}/{Idempotency-Key}``, or None.

    Neither a key name nor an exchange holds a ``/``, so the scope is unambiguous
    whatever the client's key contains.
    """
    idempotency_key = environ.get(HEADER)
    if not idempotency_key:
        return None
    name = environ.get(ENVIRON_KEY) or ANONYMOUS
    return f"{KEY_PREFIX}{idiom}/{name}/{exchange}/{idempotency_key}"


def fingerprint_of(message):
    """What makes a retry the same request: its body and Content-Type."""
    digest = hashlib.sha256(message.body)
    digest.update(b"\0" + (message.properties.content_type or "").encode())
    return digest.hexdigest()


def replay(answer):
    body = answer["body"].encode("utf-8")
    headerlist = [("Content-Type", answer["content_type"]), ("Content-Length", str(len(body))), REPLAYED]
    return Response(body=body, status=answer["status"], headerlist=headerlist)


def make_store(settings):
    """The store the settings ask for; a claim's lease covers the broker client's longest wait."""
    if not settings.idempotency_url:
        return NoIdempotency()
    lease = settings.connect_timeout + settings.publish_timeout + GRACE + LEASE_MARGIN
    return IdempotencyStore(
        settings.idempotency_url,
        ttl=settings.idempotency_ttl,
        lease=lease,
        wait=settings.publish_timeout,
        retry_after=settings.retry_after,
        socket_timeout=min(settings.connect_timeout, 2.0),
    )
