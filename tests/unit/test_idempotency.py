"""The parts of idempotent retries that need no Redis: key scope, fingerprints, the store's settings."""

import pika

from hutch.messages import Message
from hutch.settings import parse_settings
from hutch.web.idempotency import IdempotencyStore, NoIdempotency, fingerprint_of, make_store, scoped_key


def settings(**raw):
    return parse_settings({"session.secret": "s" * 32, "auth": "off", **raw})


def message(body=b"x", content_type="text/plain"):
    return Message(body, pika.BasicProperties(content_type=content_type))


def test_a_request_without_the_header_has_no_key():
    assert scoped_key({}, "notify", "orders") is None
    assert scoped_key({"HTTP_IDEMPOTENCY_KEY": ""}, "notify", "orders") is None


def test_the_key_is_scoped_by_idiom_api_key_name_and_exchange():
    environ = {"HTTP_IDEMPOTENCY_KEY": "k-1"}
    assert scoped_key(environ, "notify", "orders") == "hutch:idempotency:notify/anonymous/orders/k-1"
    named = {**environ, "hutch.api_key": "billing"}
    keys = {
        scoped_key(environ, "notify", "orders"),
        scoped_key(environ, "broadcast", "orders"),
        scoped_key(named, "notify", "orders"),
        scoped_key(environ, "notify", "orders.eu"),
    }
    assert len(keys) == 4


def test_a_client_key_with_separators_stays_in_its_scope():
    # names hold no "/", so the first two "/" after the idiom always end the name and the exchange
    pairs = [("a", "b/c"), ("a:b", "c"), ("a", "b:c"), ("a.b", "c")]
    keys = [scoped_key({"HTTP_IDEMPOTENCY_KEY": key}, "notify", exchange) for exchange, key in pairs]
    assert len(set(keys)) == len(pairs)
    for scoped, (exchange, key) in zip(keys, pairs, strict=True):
        assert scoped.split("/", 3)[2:] == [exchange, key]


def test_the_fingerprint_is_the_body_and_content_type():
    assert fingerprint_of(message()) == fingerprint_of(message())
    assert fingerprint_of(message(b"y")) != fingerprint_of(message())
    assert fingerprint_of(message(content_type="application/json")) != fingerprint_of(message())


def test_without_a_url_every_request_publishes():
    store = make_store(settings())
    assert isinstance(store, NoIdempotency)
    assert (
        store.once({"HTTP_IDEMPOTENCY_KEY": "k"}, "notify", "x", message(), lambda: "published")
        == "published"
    )


def test_the_claim_outlives_the_longest_publish_and_duplicates_wait_publish_timeout():
    store = make_store(
        settings(
            idempotency_url="redis://127.0.0.1:1/0", connect_timeout="3", publish_timeout="4", retry_after="6"
        )
    )
    assert isinstance(store, IdempotencyStore)
    assert store.lease_ms == (3 + 4 + 2 + 10) * 1000  # + the broker client's grace + the margin
    assert store.wait == 4
    assert store.retry_after == 6
    assert store.ttl_ms == 86400 * 1000
