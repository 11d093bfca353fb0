"""Idempotent retries against the real Redis and the real RabbitMQ, through the whole stack.

Each test counts what reached a real queue: a replay must publish nothing,
a failed attempt must leave the key free for a retry that publishes.
"""

import json
import signal
import threading
import time

import pika
import pytest
import webtest

from harness import redis_store
from harness.redis_node import PrivateRedis
from harness.scrape import moved, samples
from hutch.messages import Message
from hutch.web.idempotency import fingerprint_of, scoped_key

pytestmark = [pytest.mark.broker, pytest.mark.redis]

ALPHA, BETA = "alpha-key-0123456789abcdef", "beta-key-0123456789abcdef"


@pytest.fixture
def store():
    """The shared Redis, in the tests' own database; the keys of the tests' exchanges go afterwards."""
    client = redis_store.shared()
    exchanges = []
    yield client, exchanges
    redis_store.forget_exchanges(client, *exchanges)
    client.close()


@pytest.fixture
def keyed(make_stack, store, exchange):
    """A WebTest client of a stack with idempotency on; ``exchange``'s keys are forgotten afterwards."""
    store[1].append(exchange)

    def build(**raw):
        raw.setdefault("idempotency_url", redis_store.SHARED_URL)
        return webtest.TestApp(make_stack(**raw), lint=True)

    return build


def register(client, amqp, exchange, consumer="sink"):
    queue = f"{exchange}.{consumer}"
    amqp.track(queues=[queue])
    client.put(f"/notify/{exchange}/queues/{consumer}", status=201)
    return queue


def post(client, path, key, body=b"record", status=202, **headers):
    headers = {"Idempotency-Key": key, "Content-Type": "text/plain", **headers}
    return client.post(path, body, headers=headers, status=status)


def test_a_repeated_notify_is_replayed_and_published_once(keyed, amqp, exchange):
    client = keyed()
    queue = register(client, amqp, exchange)

    first = post(client, f"/notify/{exchange}", "rec-1")
    again = post(client, f"/notify/{exchange}", "rec-1")

    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json == {"message_id": "rec-1", "exchange": exchange}
    assert again.content_type == "application/json"
    assert amqp.get(queue)[1] == b"record"
    assert amqp.queue_depth(queue) == 0


def test_a_repeated_broadcast_replays_the_first_answer(keyed, amqp, exchange):
    client = keyed()
    client.post(f"/broadcast/{exchange}", b"warm-up", status=202)  # declares the transient exchange
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)

    first = post(client, f"/broadcast/{exchange}", "score-1", b"AL 24: FL 7")
    again = post(client, f"/broadcast/{exchange}", "score-1", b"AL 24: FL 7")

    assert first.json == {"message_id": "score-1", "exchange": exchange, "routed": True}
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert amqp.get(queue)[1] == b"AL 24: FL 7"
    assert amqp.queue_depth(queue) == 0


def test_the_key_is_scoped_by_exchange(keyed, amqp, exchange, unique_name, store):
    client = keyed()
    other = unique_name()
    amqp.track(exchanges=[other])
    store[1].append(other)
    queues = [register(client, amqp, exchange), register(client, amqp, other)]

    for name in (exchange, other):
        assert "Idempotent-Replayed" not in post(client, f"/notify/{name}", "same-key").headers

    assert [amqp.queue_depth(queue) for queue in queues] == [1, 1]


def test_the_key_is_scoped_by_api_key_name(keyed, amqp, exchange):
    client = keyed(
        auth="keys",
        **{"auth.key.alpha": ALPHA, "auth.permissions.alpha": "*"},
        **{"auth.key.beta": BETA, "auth.permissions.beta": "*"},
    )
    client.authorization = ("Bearer", ALPHA)
    queue = register(client, amqp, exchange)

    as_alpha = post(client, f"/notify/{exchange}", "shared-key")
    client.authorization = ("Bearer", BETA)
    as_beta = post(client, f"/notify/{exchange}", "shared-key")
    beta_again = post(client, f"/notify/{exchange}", "shared-key")

    assert "Idempotent-Replayed" not in as_alpha.headers
    assert "Idempotent-Replayed" not in as_beta.headers
    assert beta_again.headers["Idempotent-Replayed"] == "true"
    assert amqp.queue_depth(queue) == 2


def test_a_failed_attempt_is_not_remembered(keyed, amqp, exchange):
    client = keyed()
    unroutable = post(client, f"/notify/{exchange}", "retry-me", status=409)
    assert unroutable.json["error"] == "unroutable"
    assert "Idempotent-Replayed" not in unroutable.headers

    queue = register(client, amqp, exchange)
    retried = post(client, f"/notify/{exchange}", "retry-me")
    assert "Idempotent-Replayed" not in retried.headers
    assert amqp.get(queue)[1] == b"record"


def test_bad_input_loses_nothing_and_claims_nothing(keyed, amqp, exchange, store):
    client = keyed(max_body_bytes="16")
    queue = register(client, amqp, exchange)
    post(client, f"/notify/{exchange}", "too-big", b"x" * 17, status=413)
    post(client, f"/notify/{exchange}", "bad-header", status=400, **{"X-Amqp-Header-Note": "caf\u00e9"})
    assert list(store[0].scan_iter(match=f"{redis_store.KEY_PREFIX}*/{exchange}/*")) == []

    post(client, f"/notify/{exchange}", "too-big", b"x" * 16)
    assert amqp.queue_depth(queue) == 1


def test_the_answer_is_forgotten_after_the_ttl(keyed, amqp, exchange, store):
    client = keyed(idempotency_ttl="1")
    queue = register(client, amqp, exchange)
    post(client, f"/notify/{exchange}", "short-lived")
    [key] = store[0].scan_iter(match=f"{redis_store.KEY_PREFIX}notify/anonymous/{exchange}/short-lived")
    assert 0 < store[0].pttl(key) <= 1000

    time.sleep(1.3)
    again = post(client, f"/notify/{exchange}", "short-lived")
    assert "Idempotent-Replayed" not in again.headers
    assert amqp.queue_depth(queue) == 2


def test_a_key_reused_with_another_body_is_422_and_publishes_nothing(keyed, amqp, exchange):
    client = keyed()
    queue = register(client, amqp, exchange)
    post(client, f"/notify/{exchange}", "order-7", b"one")
    reused = post(client, f"/notify/{exchange}", "order-7", b"two", status=422)
    other_type = post(client, f"/notify/{exchange}", "order-7", b"one", status=422, **{"Content-Type": "x/y"})
    assert reused.json["error"] == other_type.json["error"] == "idempotency_key_reused"
    assert amqp.queue_depth(queue) == 1


def pending_claim(store, exchange, key, body=b"record", lease_ms=60000):
    """Claim ``key`` as another gateway process in the middle of its publish would."""
    environ = {"HTTP_IDEMPOTENCY_KEY": key}
    name = scoped_key(environ, "notify", exchange)
    fingerprint = fingerprint_of(Message(body, pika.BasicProperties(content_type="text/plain")))
    claim = {"state": "pending", "owner": "elsewhere", "fingerprint": fingerprint}
    store.set(name, json.dumps(claim), px=lease_ms)
    return name, fingerprint


def test_a_duplicate_waits_for_the_first_answer_and_replays_it(keyed, amqp, exchange, store):
    client = keyed(publish_timeout="5")
    queue = register(client, amqp, exchange)
    name, fingerprint = pending_claim(store[0], exchange, "in-flight")
    answer = {"message_id": "in-flight", "exchange": exchange}
    done = {"state": "done", "fingerprint": fingerprint, "status": 202, "content_type": "application/json"}
    done["body"] = json.dumps(answer)
    finish = threading.Timer(0.5, lambda: store[0].set(name, json.dumps(done)))
    finish.start()
    try:
        replayed = post(client, f"/notify/{exchange}", "in-flight")
    finally:
        finish.join()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json == answer
    assert amqp.queue_depth(queue) == 0


def test_a_duplicate_publishes_itself_when_the_first_attempt_fails_meanwhile(keyed, amqp, exchange, store):
    client = keyed(publish_timeout="5")
    queue = register(client, amqp, exchange)
    name, _ = pending_claim(store[0], exchange, "first-failed")
    release = threading.Timer(0.5, lambda: store[0].delete(name))
    release.start()
    try:
        published = post(client, f"/notify/{exchange}", "first-failed")
    finally:
        release.join()
    assert "Idempotent-Replayed" not in published.headers
    assert amqp.get(queue)[1] == b"record"


def test_a_duplicate_of_a_publish_still_in_flight_at_the_bound_is_409(keyed, amqp, exchange, store):
    client = keyed(publish_timeout="1", retry_after="3")
    queue = register(client, amqp, exchange)
    pending_claim(store[0], exchange, "stuck")
    started = time.monotonic()
    refused = post(client, f"/notify/{exchange}", "stuck", status=409)
    assert time.monotonic() - started >= 1.0
    assert refused.json["error"] == "idempotency_in_flight"
    assert refused.headers["Retry-After"] == "3"
    assert amqp.queue_depth(queue) == 0


def test_the_claim_of_a_process_that_died_mid_publish_lapses_with_its_lease(keyed, amqp, exchange, store):
    client = keyed(publish_timeout="5")
    queue = register(client, amqp, exchange)
    pending_claim(store[0], exchange, "orphaned", lease_ms=500)  # its owner never finishes
    published = post(client, f"/notify/{exchange}", "orphaned")
    assert "Idempotent-Replayed" not in published.headers
    assert amqp.get(queue)[1] == b"record"
    assert post(client, f"/notify/{exchange}", "orphaned").headers["Idempotent-Replayed"] == "true"


def test_without_the_setting_every_repeat_publishes(make_stack, amqp, exchange):
    client = webtest.TestApp(make_stack(), lint=True)
    queue = register(client, amqp, exchange)
    for _ in range(2):
        assert "Idempotent-Replayed" not in post(client, f"/notify/{exchange}", "dup").headers
    assert amqp.queue_depth(queue) == 2


@pytest.fixture
def private_redis():
    server = PrivateRedis(persistent=False).start()  # a restart comes back empty
    yield server
    server.cleanup()


def test_redis_down_refuses_keyed_requests_and_recovers(make_stack, amqp, exchange, private_redis):
    """Keyed requests: 503 with Retry-After while Redis is down (a publish could duplicate);
    requests without a key never touch Redis and keep working; a restarted Redis serves again."""
    client = webtest.TestApp(make_stack(idempotency_url=private_redis.url, retry_after="4"), lint=True)
    queue = register(client, amqp, exchange)
    post(client, f"/notify/{exchange}", "before")

    private_redis.stop()
    refused = post(client, f"/notify/{exchange}", "during", status=503)
    broadcast_refused = post(client, f"/broadcast/{exchange}-b", "during", status=503)
    unkeyed = client.post(f"/notify/{exchange}", b"no key", status=202)
    amqp.track(exchanges=[f"{exchange}-b"])
    assert refused.json["error"] == broadcast_refused.json["error"] == "idempotency_unavailable"
    assert refused.headers["Retry-After"] == "4"
    assert unkeyed.json["exchange"] == exchange

    private_redis.start()  # same port, empty: a new Redis
    post(client, f"/notify/{exchange}", "during")
    assert post(client, f"/notify/{exchange}", "during").headers["Idempotent-Replayed"] == "true"
    bodies = [amqp.get(queue)[1] for _ in range(3)]
    assert bodies == [b"record", b"no key", b"record"]
    assert amqp.queue_depth(queue) == 0


def test_a_frozen_redis_is_a_bounded_503_not_a_hang(make_stack, amqp, exchange, private_redis):
    """SIGSTOP: connections are accepted but never answered; the socket timeout bounds the wait."""
    client = webtest.TestApp(make_stack(idempotency_url=private_redis.url, connect_timeout="1"), lint=True)
    queue = register(client, amqp, exchange)
    private_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        refused = post(client, f"/notify/{exchange}", "frozen", status=503)
        took = time.monotonic() - started
        client.post(f"/notify/{exchange}", b"no key", status=202)
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    assert refused.json["error"] == "idempotency_unavailable"
    assert took < 15, f"a frozen Redis held the request {took:.1f} s"
    # The timed-out claim may still land when Redis wakes up (then it lapses with its lease):
    # a new key shows the recovery.
    post(client, f"/notify/{exchange}", "thawed")
    assert [amqp.get(queue)[1] for _ in range(2)] == [b"no key", b"record"]


def test_replays_are_counted_in_the_metrics(keyed, amqp, exchange):
    client = keyed()
    register(client, amqp, exchange)
    before = samples(client.get("/metrics", status=200).text)
    post(client, f"/notify/{exchange}", "rec-counted")
    post(client, f"/notify/{exchange}", "rec-counted")
    post(client, f"/notify/{exchange}", "rec-counted")
    after = samples(client.get("/metrics", status=200).text)
    assert moved(before, after, "hutch_idempotent_replays_total", idiom="notify") == 2
    assert moved(before, after, "hutch_http_requests_total", app="notify", status="202") == 3
