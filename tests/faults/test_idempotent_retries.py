"""The broker crash under notify load, with clients that retry by the same Idempotency-Key.

As ``test_broker_restart``, but the gateway remembers answers in Redis
(``idempotency_url``) and the clients retry the way a careful client does:
after a 503 with the same key, and, every third 2xx, once more as if the
answer had been lost on the way.  Every repeat of an answered key must be
replayed (``Idempotent-Replayed: true``) and store nothing; nothing
confirmed may be lost.

What Redis cannot remove is an in-doubt publish: the broker took the
message, then the connection died before its confirm, so the gateway
answered 503 and a retry must publish again (refusing it could lose a
message the broker never kept).  Such a copy carries the same message_id.
The test counts them apart and allows them only for keys that got such a
503 first.
"""

import collections
import json
import time
import uuid

import pytest
import requests

from harness import redis_store

from .amqp_tools import drain_message_ids
from .conftest import running_gateway
from .load import Load, repeating_notify_factory, summary, unanswered, wait_until_healthy, without_retry_after
from .test_broker_restart import AFTER, BEFORE, CLIENT_THREADS, NO_HANG, RECOVERY, crash, stop_app

pytestmark = [pytest.mark.broker, pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def idempotent_gateway(request, private_broker):
    settings = {"idempotency_url": redis_store.SHARED_URL}
    with running_gateway(request, private_broker.amqp_url, processes=2, settings=settings) as server:
        yield server


@pytest.mark.parametrize("fault", [stop_app, crash], ids=["stop_app", "crash"])
def test_retries_by_the_same_key_store_no_duplicate(private_broker, idempotent_gateway, names, fault):
    url = idempotent_gateway.url
    exchange = names("idempotent", private_broker.amqp_url)
    queue = f"{exchange}.sink"
    assert requests.put(f"{url}/notify/{exchange}/queues/sink", timeout=10).status_code == 201

    load = Load(
        repeating_notify_factory(url, exchange, uuid.uuid4().hex[:6]), threads=CLIENT_THREADS, timeout=20
    )
    load.start()
    try:
        time.sleep(BEFORE)
        fault(private_broker)
        started_at = time.monotonic()
        healthy_after = wait_until_healthy(url, RECOVERY)
        time.sleep(max(0.0, started_at + RECOVERY + AFTER - time.monotonic()))
    finally:
        outcomes = load.stop()
        store = redis_store.shared()
        redis_store.forget_exchanges(store, exchange)
        store.close()
    stored = collections.Counter(drain_message_ids(private_broker.amqp_url, queue))

    sent = {outcome.key for outcome in outcomes}
    confirmed = {outcome.key for outcome in outcomes if outcome.ok}
    repeats = [outcome for outcome in outcomes if outcome.kind == "repeat"]
    replayed = [outcome for outcome in outcomes if outcome.replayed]
    lost = confirmed - stored.keys()
    duplicated = {key: count - 1 for key, count in stored.items() if count > 1}
    failed_first = {outcome.key for outcome in outcomes if outcome.status == 503}
    in_doubt = {key for key in duplicated if key in failed_first}
    why = collections.Counter(
        json.loads(outcome.body)["detail"]
        for outcome in outcomes
        if outcome.key in in_doubt and outcome.status == 503
    )
    print(
        f"\nbroker {fault.__name__}, idempotent retries: sent {len(sent)} messages in {len(outcomes)} "
        f"requests "
        f"{summary(outcomes)}; confirmed {len(confirmed)}; repeats of a 2xx {len(repeats)}, replayed "
        f"{len(replayed)}; lost {len(lost)}; duplicated {sum(duplicated.values())} "
        f"(after an in-doubt 503: {len(in_doubt)}, {dict(why)}); "
        f"/health 200 {healthy_after and round(healthy_after, 2)} s"
    )

    assert not lost, f"confirmed but not in the queue: {sorted(lost)[:10]}"
    assert stored.keys() <= sent, "the queue holds messages nobody sent"
    assert not unanswered(outcomes), unanswered(outcomes)[:3]
    assert set(summary(outcomes)) <= {202, 503}, summary(outcomes)
    assert not without_retry_after(outcomes), without_retry_after(outcomes)[:3]
    assert max(outcome.duration for outcome in outcomes) <= NO_HANG
    assert repeats, "no client repeated an answered request"
    assert all(outcome.status == 202 and outcome.replayed for outcome in repeats), summary(repeats)
    assert set(duplicated) == in_doubt, f"stored twice without an in-doubt 503: {set(duplicated) - in_doubt}"
    assert healthy_after is not None, f"/health not 200 within {RECOVERY:g} s"
