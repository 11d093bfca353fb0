"""POST /broadcast/{exchange}/batch and POST /notify/{exchange}/batch against the real RabbitMQ
(and the real Redis for the keyed lines), with both ``publisher`` settings.

Every test counts what reached a real queue against what the answer says.
"""

import base64
import json

import pytest
import webtest

from harness import redis_store
from hutch.web.batch import parse_batch
from hutch.web.idempotency import fingerprint_of

from .helpers import PUBLISHERS

pytestmark = pytest.mark.broker

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(*items):
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@pytest.fixture(params=PUBLISHERS)
def stack(request, make_stack):
    """``stack(**settings)``: a WebTest client of a gateway with the test's ``publisher``."""

    def build(**raw):
        return webtest.TestApp(make_stack(publisher=request.param, **raw), lint=True)

    return build


@pytest.fixture
def client(stack):
    return stack()


def register(client, amqp, exchange, consumer="sink"):
    queue = f"{exchange}.{consumer}"
    amqp.track(queues=[queue])
    client.put(f"/notify/{exchange}/queues/{consumer}", status=201)
    return queue


def drain(amqp, queue):
    """Everything in ``queue`` as (properties, body), in order."""
    return [amqp.get(queue) for _ in range(amqp.queue_depth(queue))]


def test_notify_batch_stores_every_line_in_order_with_its_properties(client, amqp, exchange):
    queue = register(client, amqp, exchange)
    body = ndjson(
        {"body": "first", "content_type": "text/plain", "idempotency_key": "b-1", "correlation_id": "c-9"},
        {"body_base64": base64.b64encode(b"\x00\x01").decode(), "headers": {"source": "lab"}},
        {"body": "third"},
    )
    response = client.post(f"/notify/{exchange}/batch", body, headers=NDJSON, status=200)

    results = response.json["results"]
    assert (response.json["accepted"], response.json["failed"]) == (3, 0)
    assert [result["status"] for result in results] == [202, 202, 202]
    assert results[0] == {"status": 202, "message_id": "b-1"}
    stored = drain(amqp, queue)
    assert [body for _, body in stored] == [b"first", b"\x00\x01", b"third"]
    assert [properties.message_id for properties, _ in stored] == [result["message_id"] for result in results]
    first, second, _ = (properties for properties, _ in stored)
    assert (first.content_type, first.correlation_id, first.delivery_mode) == ("text/plain", "c-9", 2)
    assert (second.content_type, second.headers) == ("application/octet-stream", {"source": "lab"})


def test_notify_lines_nobody_took_are_409_and_nothing_is_stored(client, amqp, exchange):
    response = client.post(f"/notify/{exchange}/batch", ndjson({"body": "a"}, {"body": "b"}), status=200)
    assert (response.json["accepted"], response.json["failed"]) == (0, 2)
    assert {(r["status"], r["error"]) for r in response.json["results"]} == {(409, "unroutable")}
    queue = register(client, amqp, exchange)
    assert amqp.queue_depth(queue) == 0


def test_broadcast_batch_says_per_line_whether_a_queue_got_it(client, amqp, exchange):
    unheard = client.post(f"/broadcast/{exchange}/batch", ndjson({"body": "nobody"}), status=200)
    assert unheard.json["results"][0]["routed"] is False
    assert unheard.json["accepted"] == 1  # at most once: nobody listening is fine
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    heard = client.post(f"/broadcast/{exchange}/batch", ndjson(*({"body": str(i)} for i in range(50))))
    assert [result["routed"] for result in heard.json["results"]] == [True] * 50
    assert [body for _, body in drain(amqp, queue)] == [str(i).encode() for i in range(50)]


def test_a_bad_line_is_400_naming_it_and_nothing_is_published(client, amqp, exchange):
    queue = register(client, amqp, exchange)
    body = (
        ndjson({"body": "fine"}, {"body": "fine too"})
        + b'{"body": "x", "priority": 1}\n'
        + ndjson({"body": "z"})
    )
    refused = client.post(f"/notify/{exchange}/batch", body, headers=NDJSON, status=400)
    assert refused.json == {"error": "invalid_batch", "detail": "Line 3: unknown field 'priority'."}
    assert client.post(f"/notify/{exchange}/batch", b"", status=400).json["error"] == "invalid_batch"
    assert amqp.queue_depth(queue) == 0


def test_over_the_limits_is_413_and_nothing_is_published(stack, amqp, exchange):
    client = stack(max_batch_messages="3", max_batch_bytes="200")
    queue = register(client, amqp, exchange)
    four = ndjson(*({"body": str(i)} for i in range(4)))
    assert client.post(f"/notify/{exchange}/batch", four, status=413).json["error"] == "payload_too_large"
    big = ndjson({"body": "x" * 200})
    too_big = client.post(f"/notify/{exchange}/batch", big, status=413)
    assert too_big.json["error"] == "payload_too_large"
    assert amqp.queue_depth(queue) == 0
    client.post(f"/notify/{exchange}/batch", four[: four.rindex(b"{")], status=200)  # three fit
    assert amqp.queue_depth(queue) == 3


def test_a_batch_body_may_exceed_max_body_bytes_up_to_max_batch_bytes(stack, amqp, exchange):
    client = stack(max_body_bytes="64")
    queue = register(client, amqp, exchange)
    body = ndjson(*({"body": "x" * 50} for _ in range(10)))
    assert client.post(f"/notify/{exchange}/batch", body, status=200).json["accepted"] == 10
    assert amqp.queue_depth(queue) == 10


def test_an_exchange_of_another_type_fails_the_whole_batch(client, amqp, exchange):
    amqp.declare_exchange(exchange, "direct")
    response = client.post(f"/notify/{exchange}/batch", ndjson({"body": "a"}), status=409)
    assert response.json["error"] == "precondition_failed"


def test_the_permission_is_the_idioms(stack, amqp, exchange):
    client = stack(
        auth="keys",
        **{"auth.key.caster": "caster-key-0123456789abcdef", "auth.permissions.caster": "broadcast:*"},
    )
    client.authorization = ("Bearer", "caster-key-0123456789abcdef")
    client.post(f"/broadcast/{exchange}/batch", ndjson({"body": "a"}), status=200)
    assert (
        client.post(f"/notify/{exchange}/batch", ndjson({"body": "a"}), status=403).json["error"]
        == "forbidden"
    )
    client.authorization = None
    assert (
        client.post(f"/broadcast/{exchange}/batch", ndjson({"body": "a"}), status=401).json["error"]
        == "unauthorized"
    )


# --- idempotency, per line ------------------------------------------------------------------------


@pytest.fixture
def keyed(stack, exchange):
    """A client with idempotency on; the keys of ``exchange`` are forgotten afterwards."""
    store = redis_store.shared()
    yield stack(idempotency_url=redis_store.SHARED_URL)
    redis_store.forget_exchanges(store, exchange)
    store.close()


@pytest.mark.redis
def test_a_retried_batch_publishes_only_the_lines_not_confirmed_before(keyed, amqp, exchange):
    client = keyed
    queue = register(client, amqp, exchange)
    first = client.post(f"/notify/{exchange}/batch", ndjson({"body": "a", "idempotency_key": "k-a"}))
    assert first.json["results"] == [{"status": 202, "message_id": "k-a"}]

    retry = ndjson(
        {"body": "a", "idempotency_key": "k-a"}, {"body": "b", "idempotency_key": "k-b"}, {"body": "c"}
    )
    second = client.post(f"/notify/{exchange}/batch", retry)
    assert second.json["results"][0] == {"status": 202, "message_id": "k-a", "replayed": True}
    assert second.json["results"][1] == {"status": 202, "message_id": "k-b"}
    assert (second.json["accepted"], second.json["failed"]) == (3, 0)
    assert [body for _, body in drain(amqp, queue)] == [b"a", b"b", b"c"]


@pytest.mark.redis
def test_a_line_and_a_single_request_retry_each_other(keyed, amqp, exchange):
    client = keyed
    queue = register(client, amqp, exchange)
    client.post(
        f"/notify/{exchange}", b"one", headers={"Idempotency-Key": "s-1", "Content-Type": "text/plain"}
    )
    line = ndjson({"body": "one", "content_type": "text/plain", "idempotency_key": "s-1"})
    replayed = client.post(f"/notify/{exchange}/batch", line).json["results"][0]
    assert replayed == {"status": 202, "message_id": "s-1", "replayed": True}

    client.post(f"/notify/{exchange}/batch", ndjson({"body": "two", "idempotency_key": "s-2"}))
    headers = {"Idempotency-Key": "s-2", "Content-Type": "application/octet-stream"}  # a line's default
    single = client.post(f"/notify/{exchange}", b"two", headers=headers, status=202)
    assert single.headers["Idempotent-Replayed"] == "true"
    assert single.json == {"message_id": "s-2", "exchange": exchange}
    assert amqp.queue_depth(queue) == 2


@pytest.mark.redis
def test_a_key_reused_with_another_body_fails_only_its_line(keyed, amqp, exchange):
    client = keyed
    queue = register(client, amqp, exchange)
    client.post(f"/notify/{exchange}/batch", ndjson({"body": "a", "idempotency_key": "r-1"}))
    response = client.post(
        f"/notify/{exchange}/batch", ndjson({"body": "changed", "idempotency_key": "r-1"}, {"body": "new"})
    )
    reused, fresh = response.json["results"]
    assert (reused["status"], reused["error"]) == (422, "idempotency_key_reused")
    assert fresh["status"] == 202
    assert [body for _, body in drain(amqp, queue)] == [b"a", b"new"]


@pytest.mark.redis
def test_a_failed_line_is_not_remembered(keyed, amqp, exchange):
    client = keyed
    failed = client.post(f"/notify/{exchange}/batch", ndjson({"body": "a", "idempotency_key": "f-1"}))
    assert failed.json["results"][0]["status"] == 409
    queue = register(client, amqp, exchange)
    retried = client.post(f"/notify/{exchange}/batch", ndjson({"body": "a", "idempotency_key": "f-1"}))
    assert retried.json["results"][0] == {"status": 202, "message_id": "f-1"}
    assert amqp.queue_depth(queue) == 1


@pytest.mark.redis
def test_broadcast_lines_replay_their_routed(keyed, amqp, exchange):
    client = keyed
    client.post(f"/broadcast/{exchange}/batch", ndjson({"body": "warm-up"}))
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    line = ndjson({"body": "score", "idempotency_key": "g-1"})
    first = client.post(f"/broadcast/{exchange}/batch", line).json["results"][0]
    again = client.post(f"/broadcast/{exchange}/batch", line).json["results"][0]
    assert first == {"status": 202, "message_id": "g-1", "routed": True}
    assert again == {**first, "replayed": True}
    assert amqp.queue_depth(queue) == 1


@pytest.mark.redis
def test_a_line_whose_key_another_request_is_publishing_is_409_in_flight(stack, amqp, exchange):
    store = redis_store.shared()
    try:
        client = stack(idempotency_url=redis_store.SHARED_URL, publish_timeout="0.3")
        queue = register(client, amqp, exchange)
        line = {"body": "x", "idempotency_key": "busy"}
        fingerprint = fingerprint_of(parse_batch(ndjson(line), 1)[0].message)  # the line's own: no 422
        claim = {"state": "pending", "owner": "elsewhere", "fingerprint": fingerprint}
        store.set(f"{redis_store.KEY_PREFIX}notify/anonymous/{exchange}/busy", json.dumps(claim), px=60000)
        response = client.post(f"/notify/{exchange}/batch", ndjson(line, {"body": "free"}))
        busy, free = response.json["results"]
        assert (busy["status"], busy["error"]) == (409, "idempotency_in_flight")
        assert free["status"] == 202
        assert [body for _, body in drain(amqp, queue)] == [b"free"]
    finally:
        redis_store.forget_exchanges(store, exchange)
        store.close()


def test_an_unreachable_idempotency_store_refuses_a_keyed_batch_whole(stack, amqp, exchange):
    client = stack(idempotency_url="redis://127.0.0.1:1/0", retry_after="3")
    queue = register(client, amqp, exchange)
    body = ndjson({"body": "free"}, {"body": "keyed", "idempotency_key": "u-1"})
    refused = client.post(f"/notify/{exchange}/batch", body, status=503)
    assert refused.json["error"] == "idempotency_unavailable"
    assert refused.headers["Retry-After"] == "3"
    assert amqp.queue_depth(queue) == 0
    client.post(f"/notify/{exchange}/batch", ndjson({"body": "free"}), status=200)  # no key: no Redis
    assert amqp.queue_depth(queue) == 1


@pytest.mark.redis
def test_a_key_repeated_in_one_batch_is_published_once(keyed, amqp, exchange):
    client = keyed
    queue = register(client, amqp, exchange)
    body = ndjson(
        {"body": "a", "idempotency_key": "d-1"},
        {"body": "a", "idempotency_key": "d-1"},
        {"body": "changed", "idempotency_key": "d-1"},
    )
    first, again, changed = client.post(f"/notify/{exchange}/batch", body).json["results"]
    assert first == {"status": 202, "message_id": "d-1"}
    assert again == {**first, "replayed": True}
    assert (changed["status"], changed["error"]) == (422, "idempotency_key_reused")
    assert [body for _, body in drain(amqp, queue)] == [b"a"]


def test_without_an_idempotency_store_a_repeated_key_is_only_a_message_id(client, amqp, exchange):
    queue = register(client, amqp, exchange)
    body = ndjson({"body": "a", "idempotency_key": "d-2"}, {"body": "a", "idempotency_key": "d-2"})
    results = client.post(f"/notify/{exchange}/batch", body).json["results"]
    assert results == [{"status": 202, "message_id": "d-2"}] * 2
    assert [properties.message_id for properties, _ in drain(amqp, queue)] == ["d-2", "d-2"]
