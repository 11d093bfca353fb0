"""The pure parts of push delivery: the target policy, signing and sealing, the subscription's body."""

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hutch.auth.policy import make_key
from hutch.delivery import signing, topology
from hutch.delivery.responders import time_left
from hutch.delivery.store import Subscription, parse_body, retry_queues
from hutch.delivery.targets import TargetPolicy, internal, named_host
from hutch.errors import InvalidSubscription, TargetRefused

# --- push_allow and SSRF ----------------------------------------------------------------------

PRODUCTION = TargetPolicy(["https://"])
TESTS = TargetPolicy(["http://127.0.0.1:", "https://"])


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fc00::1", "::ffff:10.0.0.1", "224.0.0.1", "240.0.0.1"],
)  # fmt: skip
def test_internal_addresses(address):
    assert internal(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address):
    assert not internal(address)


def test_a_bare_scheme_names_no_host_and_a_prefix_names_its_host():
    assert named_host("https://") is None
    assert named_host("http://127.0.0.1:") == "127.0.0.1"
    assert named_host("https://hooks.internal/v1/") == "hooks.internal"
    assert named_host("http://[::1]:8080/") == "::1"


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "https://127.0.0.1/", "https://[::1]/", "https://10.0.0.1:8443/x",
     "https://u:p@example.com/", "ftp://example.com/", "https:///nohost", "https://exa mple.com/", "",
     "https://é.com/", "https://x.com/" + "a" * 3000],
)  # fmt: skip
def test_production_refuses(url):
    with pytest.raises(TargetRefused):
        PRODUCTION.check_url(url)


def test_production_allows_a_public_https_url():
    assert PRODUCTION.check_url("https://example.com/hook") == ("example.com", False)


def test_a_prefix_that_names_a_loopback_host_trusts_it_for_that_prefix_only():
    assert TESTS.check_url("http://127.0.0.1:8080/hook") == ("127.0.0.1", True)
    with pytest.raises(TargetRefused):
        TESTS.check_url("https://127.0.0.1/hook")  # matches only the bare https://
    with pytest.raises(TargetRefused):
        TESTS.check_url("http://127.0.0.2:8080/")  # no prefix


def test_addresses_a_name_resolves_to_are_checked_unless_trusted():
    with pytest.raises(TargetRefused):
        PRODUCTION.check_addresses("evil.example", ["93.184.216.34", "10.0.0.1"])
    assert PRODUCTION.check_addresses("ok.example", ["93.184.216.34"]) == ["93.184.216.34"]
    assert PRODUCTION.check_addresses("named", ["10.0.0.1"], trusted=True) == ["10.0.0.1"]


def test_a_name_resolving_to_loopback_is_refused_at_registration():
    with pytest.raises(TargetRefused):
        PRODUCTION.check_resolved("https://localhost/hook")


# --- signing and sealing ----------------------------------------------------------------------


def test_signatures_verify_with_the_reference_library():
    secret = signing.new_secret()
    now = int(time.time())
    body = b'{"a": 1}\xff'  # bytes as stored, not necessarily UTF-8
    headers = {
        "webhook-id": "m1",
        "webhook-timestamp": str(now),
        "webhook-signature": signing.sign([signing.secret_key(secret)], "m1", now, body),
    }
    Webhook(secret).verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers, json_parse=False)


def test_two_keys_give_two_signatures_each_verifying():
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    value = signing.sign([signing.secret_key(new), signing.secret_key(old)], "m", now, b"x")
    assert len(value.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(
            b"x",
            {"webhook-id": "m", "webhook-timestamp": str(now), "webhook-signature": value},
            json_parse=False,
        )


def test_a_sealed_secret_opens_only_with_its_key_and_name():
    sealer = signing.Sealer(b"host key material")
    secret = signing.new_secret()
    sealed = sealer.seal(secret, "push/a/b")
    assert secret not in sealed
    assert sealer.open(sealed, "push/a/b") == secret
    assert sealer.open(sealed, "push/a/c") is None  # copied onto another subscription
    assert signing.Sealer(b"another host key").open(sealed, "push/a/b") is None


def test_an_expired_previous_secret_no_longer_signs():
    sealer = signing.Sealer(b"k")
    current, previous = signing.new_secret(), signing.new_secret()
    subscription = Subscription(
        "push", "a", "b", "https://x/",
        secrets=({"sealed": sealer.seal(current, "push/a/b"), "until": None},
                 {"sealed": sealer.seal(previous, "push/a/b"), "until": 1000.0}),
    )  # fmt: skip
    assert subscription.signing_keys(sealer, now=999.0) == [
        signing.secret_key(current),
        signing.secret_key(previous),
    ]
    assert subscription.signing_keys(sealer, now=1001.0) == [signing.secret_key(current)]


# --- the body and the queues ------------------------------------------------------------------


def test_defaults_fill_what_the_body_leaves_out():
    assert parse_body({"url": "https://x/"}, "push") == {
        "url": "https://x/",
        "concurrency": 8,
        "timeout": 15.0,
        "retry_schedule": (1, 5, 30, 120, 600, 1800, 3600, 10800),
    }
    assert parse_body({"url": "https://x/", "concurrency": 2}, "rpc") == {
        "url": "https://x/",
        "concurrency": 2,
    }


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"url": 1}, {"url": "u", "concurrency": True}, {"url": "u", "concurrency": 257},
     {"url": "u", "timeout": 0}, {"url": "u", "timeout": float("nan")}, {"url": "u", "retry_schedule": []},
     {"url": "u", "retry_schedule": [0]}, {"url": "u", "retry_schedule": [1] * 33}, {"url": "u", "extra": 1}],
)  # fmt: skip
def test_bad_bodies(body):
    if body == {"url": "u", "retry_schedule": []}:
        assert parse_body(body, "push")["retry_schedule"] == ()  # no retries: dead after one attempt
        return
    with pytest.raises(InvalidSubscription):
        parse_body(body, "push")


def test_a_responder_takes_no_schedule():
    with pytest.raises(InvalidSubscription):
        parse_body({"url": "u", "retry_schedule": [1]}, "rpc")


def test_retry_queues_send_expired_messages_back_to_the_work_queue():
    arguments = topology.retry_arguments("ex.c", 0.2, "quorum")
    assert arguments["x-message-ttl"] == 200
    assert arguments["x-dead-letter-exchange"] == "" and arguments["x-dead-letter-routing-key"] == "ex.c"
    assert (
        arguments["x-dead-letter-strategy"] == "at-least-once" and arguments["x-overflow"] == "reject-publish"
    )
    assert topology.retry_queue("ex.c", 0.2) == "ex.c.retry.200"
    assert topology.dead_queue("ex.c") == "ex.c.dead"


def test_the_retry_queues_of_a_subscription_are_those_of_its_schedule():
    push = Subscription("push", "ex", "c", "https://example.com/", retry_schedule=(0.2, 5, 5))
    assert retry_queues(push) == {"ex.c.retry.200", "ex.c.retry.5000"}
    assert retry_queues(Subscription("rpc", "ex", "k", "https://example.com/")) == set()
    assert retry_queues(None) == set()


def test_internal_headers_are_not_passed_on():
    headers = {
        "tenant": "a",
        "x-hutch-attempt": 2,
        "x-death": [],
        "x-first-death-queue": "q",
        "X-Delivery-Count": 1,
    }
    assert topology.user_headers(headers) == {"tenant": "a"}


# --- HTTP responders -------------------------------------------------------------------------


class Request:
    def __init__(self, expiration=None, timestamp=None):
        self.expiration, self.timestamp = expiration, timestamp


def test_time_left_is_the_expiration_less_the_seconds_surely_waited():
    assert time_left(Request(), default=30.0, now=1000.5) == 30.0
    assert time_left(Request(expiration=2.0), default=30.0, now=1000.5) == 2.0
    assert (
        time_left(Request(expiration=2.0, timestamp=1000), default=30.0, now=1001.9) == 2.0
    )  # < 1 s resolution
    assert time_left(Request(expiration=5.0, timestamp=1000), default=30.0, now=1003.2) == 3.0


def test_respond_is_granted_on_the_exchange_and_is_not_rpc():
    key = make_key("svc", "s" * 16, "respond:billing rpc:api/add")
    assert key.allows("respond", "billing/invoice") and key.allows("respond", "billing/refund")
    assert not key.allows("respond", "orders/invoice")
    assert not key.allows("rpc", "billing/invoice") and not key.allows("respond", "api/add")


def test_the_resolver_hands_out_only_checked_addresses():
    """What aiohttp connects to is what the resolver answers: an internal answer is refused unless
    the URL being fetched matched a prefix naming its host."""
    import asyncio

    from hutch.delivery.targets import TRUSTED, CheckedResolver

    async def resolve(trusted):
        resolver = CheckedResolver(PRODUCTION)
        try:
            TRUSTED.set(trusted)
            return await resolver.resolve("localhost", 443)
        finally:
            await resolver.close()

    with pytest.raises(TargetRefused):
        asyncio.run(resolve(False))
    assert {answer["host"] for answer in asyncio.run(resolve(True))} <= {"127.0.0.1", "::1"}
