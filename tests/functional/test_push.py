"""Push delivery end to end: the HTTP API (WebTest over the real stack), real delivery processes
(``hutch delivery``), real receivers (aiohttp) and the real RabbitMQ; a private Redis holds the
subscriptions, so no other test's subscription is delivered here.

Every delivery is checked with the Standard Webhooks reference library.  Retry schedules are short
([0.2, 0.5] s); every wait is a bound on a condition, never a speed claim.
"""

import base64
import collections
import json
import re
import time

import pytest
import webtest
from pika.exceptions import ChannelClosedByBroker

from harness.push import SESSION_SECRET, DeliveryProcess, verifies, wait_for
from harness.redis_node import PrivateRedis
from hutch.delivery import topology
from hutch.delivery.store import POLL

from .conftest import AMQP_URL, PUSH_ALLOW

SHORT = [0.2, 0.5]


@pytest.fixture
def client(push_client):
    return push_client


@pytest.fixture
def subscribe(client, amqp, unique_name):
    """PUT a push subscription for a fresh exchange; DELETE it and its queues afterwards."""
    made = []

    def make(url, consumer="c", **config):
        exchange = unique_name("push")
        queue = f"{exchange}.{consumer}"
        schedule = config.setdefault("retry_schedule", SHORT)
        amqp.track(
            exchanges=[exchange],
            queues=[queue, topology.dead_queue(queue), *(topology.retry_queue(queue, d) for d in schedule)],
        )
        response = client.put_json(f"/notify/{exchange}/queues/{consumer}/push", {"url": url, **config})
        assert response.status_int == 201
        made.append((exchange, consumer))
        return exchange, consumer, response.json["secret"]

    yield make
    for exchange, consumer in made:
        client.delete(f"/notify/{exchange}/queues/{consumer}/push", expect_errors=True)


def publish(client, exchange, count, start=0, **headers):
    ids = []
    for number in range(start, start + count):
        body = json.dumps({"n": number}).encode()
        response = client.post(
            f"/notify/{exchange}", body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_int == 202
        ids.append(response.json["message_id"])
    return ids


def state(client, exchange, consumer="c"):
    return client.get(f"/notify/{exchange}/queues/{consumer}/push").json


# --- the API ---------------------------------------------------------------------------------


def test_create_shows_the_secret_once_update_keeps_it(client, subscribe, receivers):
    receiver = receivers()
    exchange, consumer, secret = subscribe(receiver.url, timeout=3)
    assert secret.startswith("whsec_")
    path = f"/notify/{exchange}/queues/{consumer}/push"
    updated = client.put_json(path, {"url": receiver.url, "concurrency": 2})
    assert updated.status_int == 200
    assert "secret" not in updated.json and updated.json["concurrency"] == 2
    shown = client.get(path).json
    assert "secret" not in shown and secret not in json.dumps(shown)
    assert (
        shown["url"] == receiver.url
        and shown["timeout"] == 15
        and shown["retry_schedule"] == [1, 5, 30, 120, 600, 1800, 3600, 10800]
    )
    assert shown["delivered"] == 0 and shown["dead_letters"] == 0 and shown["last_failure"] is None


def test_put_registers_the_consumer_queue(client, subscribe, receivers, amqp):
    exchange, consumer, _ = subscribe(receivers().url)
    assert client.put(f"/notify/{exchange}/queues/{consumer}").status_int == 200  # exists now


def test_delete_stops_pushing_and_keeps_the_queue(client, subscribe, receivers):
    receiver = receivers()
    exchange, consumer, _ = subscribe(receiver.url)
    path = f"/notify/{exchange}/queues/{consumer}/push"
    assert client.delete(path).status_int == 204
    assert client.delete(path, status=404).json["error"] == "no_subscription"
    assert client.get(path, status=404).json["error"] == "no_subscription"
    assert client.post(f"{path}/rotate-secret", status=404).json["error"] == "no_subscription"
    publish(client, exchange, 1)  # the queue is still bound: 202, kept


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"url": 5}',
        b'{"url": "https://example.com/", "colour": "red"}',
        b'{"url": "https://example.com/", "concurrency": 0}',
        b'{"url": "https://example.com/", "concurrency": 1.5}',
        b'{"url": "https://example.com/", "timeout": -1}',
        b'{"url": "https://example.com/", "retry_schedule": [1, "x"]}',
        b'{"url": "https://example.com/", "retry_schedule": 5}',
    ],
)
def test_a_bad_body_is_a_400(client, unique_name, body):
    response = client.put(
        f"/notify/{unique_name('push')}/queues/c/push",
        body,
        headers={"Content-Type": "application/json"},
        status=400,
    )
    assert response.json["error"] == "invalid_subscription"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http: only https:// (and the listed loopback prefix)
        "https://127.0.0.1/hook",  # loopback, not named by a prefix for https
        "https://localhost/hook",  # a name that resolves to loopback
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://user:pass@example.com/hook",
        "ftp://example.com/",
        "/relative",
    ],
)
def test_targets_outside_push_allow_or_inside_are_refused(client, unique_name, url):
    response = client.put_json(f"/notify/{unique_name('push')}/queues/c/push", {"url": url}, status=400)
    assert response.json["error"] == "target_refused"


def test_no_push_store_is_a_503(make_stack, unique_name):
    client = webtest.TestApp(make_stack())
    response = client.put_json(
        f"/notify/{unique_name('push')}/queues/c/push", {"url": "https://example.com/"}, status=503
    )
    assert response.json["error"] == "subscription_store_unavailable"


def test_a_store_that_is_down_is_a_503(make_stack, unique_name):
    dead = PrivateRedis(persistent=False)  # a port nobody listens on
    client = webtest.TestApp(make_stack(push_store=dead.url, push_allow=PUSH_ALLOW))
    response = client.get(f"/notify/{unique_name('push')}/queues/c/push", status=503)
    assert response.json["error"] == "subscription_store_unavailable"


def test_dead_letters_of_a_consumer_never_pushed_are_404(client, unique_name):
    exchange = unique_name("push")
    for method, path in (
        ("get", "dead-letters"),
        ("delete", "dead-letters"),
        ("post", "dead-letters/redeliver"),
    ):
        response = getattr(client, method)(f"/notify/{exchange}/queues/c/{path}", status=404)
        assert response.json["error"] == "no_subscription"
    response = client.get(f"/notify/{exchange}/queues/c/dead-letters?limit=0", status=400)
    assert response.json["error"] == "invalid_subscription"


# --- delivery --------------------------------------------------------------------------------


def test_every_message_arrives_signed_with_its_headers(client, subscribe, receivers, delivery):
    receiver = receivers()
    exchange, _consumer, secret = subscribe(receiver.url)
    ids = publish(client, exchange, 5, **{"X-Correlation-Id": "corr-1", "X-Amqp-Header-Tenant": "acme"})
    wait_for(lambda: len(receiver.ok()) >= 5, what="5 deliveries")
    assert sorted(receiver.ids()) == sorted(ids)
    assert receiver.unverified([secret]) == []
    first = receiver.ok()[0]
    headers = {name.lower(): value for name, value in first.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-hutch-exchange"] == exchange
    assert headers["x-hutch-attempt"] == "1"
    assert headers["x-correlation-id"] == "corr-1"
    assert headers["x-amqp-header-tenant"] == "acme"
    assert json.loads(first.body)["n"] in range(5)
    wait_for(lambda: state(client, exchange)["delivered"] == 5, what="the delivered count")
    assert state(client, exchange)["last_success_at"] is not None


def test_a_receiver_down_then_up_gets_every_message(client, subscribe, receivers, delivery):
    receiver = receivers()
    receiver.down()
    exchange, consumer, secret = subscribe(receiver.url, retry_schedule=[0.2, 0.5, 1, 1, 1, 1, 1, 1])
    ids = publish(client, exchange, 10)
    wait_for(lambda: state(client, exchange)["failed_attempts"] >= 10, what="refused attempts")
    failure = state(client, exchange)["last_failure"]
    assert "error" in failure and "status" not in failure
    receiver.up()
    wait_for(lambda: set(receiver.ids()) == set(ids), what="every message after the receiver came back")
    attempts = [int(received.headers["X-Hutch-Attempt"]) for received in receiver.ok()]
    assert min(attempts) >= 2  # none got through while it was down
    assert receiver.unverified([secret]) == []
    assert client.get(f"/notify/{exchange}/queues/{consumer}/dead-letters").json["dead_letters"] == []


def test_always_500_ends_in_dead_letters_that_redeliver(client, subscribe, receivers, delivery):
    failing = True
    receiver = receivers(lambda received, count: 500 if failing else 200)
    exchange, consumer, secret = subscribe(receiver.url)
    ids = publish(client, exchange, 3)
    base = f"/notify/{exchange}/queues/{consumer}"
    wait_for(lambda: state(client, exchange)["dead_letters"] == 3, what="3 dead letters")
    assert len(receiver.requests) == 3 * (len(SHORT) + 1)  # the first attempt and one per delay
    wait_for(lambda: state(client, exchange)["failed_attempts"] == 9, what="the counts (added every 0.5 s)")
    shown = state(client, exchange)
    assert shown["delivered"] == 0
    assert shown["last_failure"]["status"] == 500
    listed = client.get(f"{base}/dead-letters").json["dead_letters"]
    assert sorted(entry["message_id"] for entry in listed) == sorted(ids)
    entry = listed[0]
    assert (
        entry["attempts"] == 3 and entry["last_status"] == 500 and entry["content_type"] == "application/json"
    )
    assert json.loads(base64.b64decode(entry["body_base64"]))["n"] in range(3)
    assert entry["size"] == len(base64.b64decode(entry["body_base64"])) and entry["dead_at"]
    assert client.get(f"{base}/dead-letters").json["dead_letters"] == listed  # listing kept them, in order
    assert client.get(f"{base}/dead-letters?limit=2").json["dead_letters"] == listed[:2]
    failing = False
    assert client.post(f"{base}/dead-letters/redeliver").json == {"redelivered": 3}
    wait_for(lambda: sorted(receiver.ids()) == sorted(ids), what="the redelivered messages")
    assert [received.headers["X-Hutch-Attempt"] for received in receiver.ok()] == ["1", "1", "1"]
    assert client.get(f"{base}/dead-letters").json["dead_letters"] == []
    assert receiver.unverified([secret]) == []


def test_dead_letters_keep_their_order_and_drop(client, subscribe, receivers, delivery):
    receiver = receivers(lambda received, count: 500)
    exchange, consumer, _ = subscribe(receiver.url, concurrency=1, retry_schedule=[0.2])
    ids = publish(client, exchange, 4)
    base = f"/notify/{exchange}/queues/{consumer}"
    wait_for(lambda: state(client, exchange)["dead_letters"] == 4, what="4 dead letters")
    listed = [entry["message_id"] for entry in client.get(f"{base}/dead-letters").json["dead_letters"]]
    assert sorted(listed) == sorted(ids)
    for _ in range(3):  # listing again and again never reorders them
        again = [entry["message_id"] for entry in client.get(f"{base}/dead-letters").json["dead_letters"]]
        assert again == listed
    assert client.delete(f"{base}/dead-letters").json == {"dropped": 4}
    assert client.get(f"{base}/dead-letters").json["dead_letters"] == []
    assert state(client, exchange)["dead_letters"] == 0


def test_a_receiver_slower_than_the_timeout_fails_each_attempt(client, subscribe, receivers, delivery):
    receiver = receivers(lambda received, count: ("sleep", 1.5, 200))
    exchange, consumer, _ = subscribe(receiver.url, timeout=0.3, retry_schedule=[0.2])
    publish(client, exchange, 1)
    wait_for(lambda: state(client, exchange)["dead_letters"] == 1, what="the dead letter")
    (entry,) = client.get(f"/notify/{exchange}/queues/{consumer}/dead-letters").json["dead_letters"]
    assert entry["last_error"] == "timeout" and entry["attempts"] == 2
    wait_for(lambda: state(client, exchange)["last_failure"], what="the last failure")
    assert state(client, exchange)["last_failure"]["error"] == "timeout"


def test_410_is_a_failure_like_any_other(client, subscribe, receivers, delivery):
    receiver = receivers(lambda received, count: 410)
    exchange, consumer, _ = subscribe(receiver.url)
    publish(client, exchange, 1)
    wait_for(lambda: state(client, exchange)["dead_letters"] == 1, what="the dead letter")
    (entry,) = client.get(f"/notify/{exchange}/queues/{consumer}/dead-letters").json["dead_letters"]
    assert entry["last_status"] == 410 and entry["attempts"] == 3
    assert len(receiver.requests) == 3


def test_a_redirect_is_not_followed(client, subscribe, receivers, delivery):
    target = receivers()
    redirecting = receivers(lambda received, count: ("redirect", target.url))
    exchange, _consumer, _ = subscribe(redirecting.url, retry_schedule=[0.2])
    publish(client, exchange, 1)
    wait_for(lambda: state(client, exchange)["dead_letters"] == 1, what="the dead letter")
    assert target.requests == []


def test_a_rotated_secret_and_the_previous_one_both_sign(client, subscribe, receivers, delivery):
    receiver = receivers()
    exchange, consumer, old = subscribe(receiver.url)
    new = client.post(f"/notify/{exchange}/queues/{consumer}/push/rotate-secret").json["secret"]
    assert new != old and new.startswith("whsec_")

    def signed_twice():  # the delivery process reads the rotation within its poll
        publish(client, exchange, 1)
        return [r for r in receiver.ok() if len(r.headers["webhook-signature"].split()) == 2]

    twice = wait_for(signed_twice, interval=0.5, timeout=10, what="a delivery signed by both secrets")
    assert not [r for r in twice if not verifies(r, [old])]
    assert not [r for r in twice if not verifies(r, [new])]
    assert receiver.unverified([old]) == []  # every delivery, before and after, verifies with the old one


def test_a_change_of_url_is_followed(client, subscribe, receivers, delivery):
    first, second = receivers(), receivers()
    exchange, consumer, _ = subscribe(first.url)
    publish(client, exchange, 1)
    wait_for(lambda: first.ok(), what="the first delivery")
    client.put_json(
        f"/notify/{exchange}/queues/{consumer}/push", {"url": second.url, "retry_schedule": SHORT}
    )

    def moved():
        publish(client, exchange, 1)
        return second.ok()

    wait_for(moved, interval=0.5, timeout=10, what="deliveries to the new URL")


def test_a_host_with_another_sealing_key_never_posts_unsigned(
    push_redis, client, subscribe, receivers, delivery
):
    """A delivery process whose key does not open the secret fails the attempt instead of posting;
    the process with the right key delivers every message (after the other's failed attempts)."""
    receiver = receivers()
    exchange, _consumer, secret = subscribe(receiver.url, retry_schedule=[0.2] * 10)
    elsewhere = DeliveryProcess(AMQP_URL, push_redis.url)
    elsewhere.ini.write_text(
        elsewhere.ini.read_text().replace(SESSION_SECRET, "another-hosts-secret-0123456789abcdef")
    )
    with elsewhere:
        wait_for(lambda: "pushing push/" in elsewhere.log(), what="the other process consuming")
        ids = publish(client, exchange, 20)
        wait_for(lambda: set(receiver.ids()) == set(ids), what="every message")
    assert "does not open" in elsewhere.log()
    assert receiver.unverified([secret]) == []


# --- two processes ---------------------------------------------------------------------------


def test_two_processes_share_one_subscription_and_follow_its_changes(
    client, subscribe, receivers, delivery, push_redis, amqp
):
    first = receivers(lambda received, count: ("sleep", 0.05, 200))
    second = receivers(lambda received, count: ("sleep", 0.05, 200))
    exchange, consumer, secret = subscribe(first.url, concurrency=2)
    with DeliveryProcess(AMQP_URL, push_redis.url):
        queue = f"{exchange}.{consumer}"
        wait_for(lambda: consumer_count(amqp, queue) == 2, what="a consumer in each process")
        ids = publish(client, exchange, 40)
        wait_for(lambda: set(first.ids()) == set(ids), what="every message")
        # changed through this gateway: both processes must follow (each takes some of the next 40)
        client.put_json(f"/notify/{exchange}/queues/{consumer}/push", {"url": second.url, "concurrency": 2})
        wait_for(lambda: consumer_count(amqp, queue) == 2, what="both consuming again")
        time.sleep(POLL * 2)  # a poll of each process has passed (a bound, not a speed claim)
        later = publish(client, exchange, 40, start=40)
        wait_for(lambda: set(second.ids()) == set(later), what="the later messages at the new URL")
    assert set(first.ids()) == set(ids)  # none of the later ones went to the old URL
    assert collections.Counter(first.ids() + second.ids()).keys() == set(ids) | set(later)
    assert first.unverified([secret]) == [] and second.unverified([secret]) == []


def test_concurrency_holds_for_the_tier_and_one_keeps_order(
    client, subscribe, receivers, delivery, push_redis, amqp
):
    """concurrency 1 over two processes: one consumes (in order); when it is killed, the other
    takes the subscription over and every message arrives."""
    receiver = receivers()
    exchange, consumer, _ = subscribe(receiver.url, concurrency=1, retry_schedule=[0.2, 0.5, 1])
    queue = f"{exchange}.{consumer}"
    with DeliveryProcess(AMQP_URL, push_redis.url) as other:
        wait_for(
            lambda: "hutch:push" not in other.log() and "connected" in other.log(), what="the second process"
        )
        time.sleep(POLL * 3)  # both have announced themselves and shared the subscription out
        assert consumer_count(amqp, queue) == 1
        ids = publish(client, exchange, 20)
        wait_for(lambda: len(receiver.ok()) == 20, what="the first 20")
        assert receiver.ids() == ids  # one consumer, prefetch 1, no failure: in order
        holder = other if f"pushing push/{exchange}/" in other.log() else None
        if holder is None:
            delivery.kill()  # the module's process held it: kill it, the other must take over
        else:
            other.kill()
        wait_for(lambda: consumer_count(amqp, queue) == 1, timeout=20, what="the survivor consuming")
        later = publish(client, exchange, 10, start=20)
        wait_for(lambda: set(later) <= set(receiver.ids()), timeout=20, what="the later messages")
    if holder is None:
        delivery.start()  # the module's process, for the tests after this one


def test_every_attempt_checks_the_target_again(make_stack, receivers, unique_name, amqp):
    """push_allow narrowed after the subscription was made (here: the only delivery process's ini
    allows only https://): its attempts are refused, never sent, and end as dead letters.  A Redis
    of its own, so that no other delivery process takes the message."""
    receiver = receivers()
    exchange = unique_name("push")
    queue = f"{exchange}.c"
    amqp.track(
        exchanges=[exchange], queues=[queue, topology.dead_queue(queue), topology.retry_queue(queue, 0.2)]
    )
    with PrivateRedis(persistent=False) as own:
        stack = make_stack(push_store=own.url, push_allow=PUSH_ALLOW, **{"session.secret": SESSION_SECRET})
        own_client = webtest.TestApp(stack)
        path = f"/notify/{exchange}/queues/c/push"
        own_client.put_json(path, {"url": receiver.url, "retry_schedule": [0.2]}, status=201)
        with DeliveryProcess(AMQP_URL, own.url, push_allow="https://"):
            publish(own_client, exchange, 1)
            wait_for(lambda: own_client.get(path).json["dead_letters"] == 1, what="the dead letter")
        (entry,) = own_client.get(f"/notify/{exchange}/queues/c/dead-letters").json["dead_letters"]
        own_client.delete(path)
    assert entry["last_error"].startswith("refused:")
    assert receiver.requests == []


def depth(amqp, queue):
    """The messages in ``queue``; None when it does not exist."""
    try:
        return amqp.queue_depth(queue)
    except ChannelClosedByBroker as error:
        if error.reply_code == 404:
            return None
        raise


def test_a_changed_schedule_deletes_old_retry_queues_once_empty_and_loses_nothing(
    client, subscribe, receivers, delivery, amqp
):
    failing = True
    receiver = receivers(lambda received, count: 500 if failing else 200)
    exchange, consumer, _ = subscribe(receiver.url, retry_schedule=[8, 0.3])
    queue = f"{exchange}.{consumer}"
    holding, empty, new = (topology.retry_queue(queue, delay) for delay in (8, 0.3, 0.2))
    amqp.track(queues=[new])
    (message_id,) = publish(client, exchange, 1)
    wait_for(lambda: depth(amqp, holding) == 1, what="the failed message waiting in its retry queue")
    failing = False
    path = f"/notify/{exchange}/queues/{consumer}/push"
    client.put_json(path, {"url": receiver.url, "retry_schedule": [0.2]})
    wait_for(lambda: depth(amqp, empty) is None, what="the empty retry queue of the old schedule deleted")
    wait_for(lambda: depth(amqp, new) == 0, what="the new schedule's retry queue")
    # The one holding a message was kept: the message comes back to the work queue after its delay.
    wait_for(lambda: receiver.ids() == [message_id], what="the waiting message delivered")
    assert receiver.ok()[0].headers["X-Hutch-Attempt"] == "2"
    wait_for(lambda: depth(amqp, holding) is None, what="the drained old retry queue deleted")
    client.put_json(path, {"url": receiver.url, "retry_schedule": [0.2, 8]})  # a delay taken back
    wait_for(lambda: depth(amqp, holding) == 0, what="the retry queue declared again")
    assert depth(amqp, new) == 0


def test_deleting_a_subscription_deletes_its_empty_retry_queues(client, subscribe, receivers, delivery, amqp):
    receiver = receivers()
    exchange, consumer, _ = subscribe(receiver.url)
    queue = f"{exchange}.{consumer}"
    retries = [topology.retry_queue(queue, delay) for delay in SHORT]
    wait_for(lambda: [depth(amqp, name) for name in retries] == [0, 0], what="the retry queues declared")
    client.delete(f"/notify/{exchange}/queues/{consumer}/push", status=204)
    wait_for(lambda: [depth(amqp, name) for name in retries] == [None, None], what="the retry queues deleted")
    assert depth(amqp, queue) == 0 and depth(amqp, topology.dead_queue(queue)) == 0  # these stay


def consumer_count(amqp, queue):
    channel = amqp.connection.channel()
    try:
        return channel.queue_declare(queue, passive=True).method.consumer_count
    finally:
        channel.close()


def test_the_state_shows_amqp_consumers_besides_the_delivery_processes(
    client, subscribe, receivers, delivery, amqp
):
    receiver = receivers()
    exchange, consumer, _ = subscribe(receiver.url, concurrency=2)
    queue = f"{exchange}.{consumer}"
    wait_for(lambda: consumer_count(amqp, queue) >= 1, what="the delivery process consuming")
    wait_for(lambda: state(client, exchange)["other_consumers"] == 0, what="no other consumer counted")
    channel = amqp.connection.channel()
    try:
        channel.basic_consume(queue, lambda *args: None)  # an AMQP consumer on a pushed queue: wrong
        assert state(client, exchange)["other_consumers"] == 1
    finally:
        channel.close()
    wait_for(lambda: state(client, exchange)["other_consumers"] == 0, what="the other consumer gone")


def test_other_consumers_is_null_when_the_queue_is_gone(client, unique_name, amqp):
    exchange = unique_name("push")
    amqp.track(exchanges=[exchange])
    client.put_json(f"/notify/{exchange}/queues/c/push", {"url": "http://127.0.0.1:9/"})
    try:
        amqp._on_channel(lambda channel: channel.queue_delete(f"{exchange}.c"))
        assert state(client, exchange)["other_consumers"] is None
    finally:
        client.delete(f"/notify/{exchange}/queues/c/push")


# --- the dashboard's page --------------------------------------------------------------------

ADMIN = {"Authorization": "Bearer push-admin-key-0123456789"}
OTHER = {"Authorization": "Bearer push-other-key-0123456789"}


@pytest.fixture
def keyed(make_stack, push_redis):
    keys = {
        "auth": "keys",
        "auth.key.admin": "push-admin-key-0123456789",
        "auth.permissions.admin": "*",
        "auth.key.other": "push-other-key-0123456789",
        "auth.permissions.other": "register:t.elsewhere.*",
    }
    stack = make_stack(
        push_store=push_redis.url, push_allow=PUSH_ALLOW, **{"session.secret": SESSION_SECRET, **keys}
    )
    return webtest.TestApp(stack, lint=True)


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_the_page_lists_subscriptions_and_redelivers_dead_letters(keyed, subscribe, receivers, delivery):
    failing = True
    receiver = receivers(lambda received, count: 500 if failing else 200)
    exchange, consumer, _ = subscribe(receiver.url, retry_schedule=[0.2])
    publish(keyed, exchange, 2, **ADMIN)
    path = f"/notify/{exchange}/queues/{consumer}/push"
    wait_for(lambda: keyed.get(path, headers=ADMIN).json["dead_letters"] == 2, what="2 dead letters")
    page = keyed.get("/subscriptions/", headers={**ADMIN, "Accept": "text/html"})
    assert f"push/{exchange}/{consumer}" in page.text and receiver.url in page.text
    assert '<td class="dead-letters">2</td>' in page.text
    assert keyed.get("/subscriptions/", headers={**OTHER, "Accept": "text/html"}).text.count(exchange) == 0
    form = {"exchange": exchange, "consumer": consumer, "action": "redeliver"}
    refused = keyed.post("/subscriptions/", {**form, "csrf_token": "wrong"}, headers=ADMIN, status=403)
    assert "bad_csrf_token" in refused.text
    other_page = keyed.get("/subscriptions/", headers={**OTHER, "Accept": "text/html"})
    forbidden = keyed.post(
        "/subscriptions/", {**form, "csrf_token": csrf_of(other_page)}, headers=OTHER, status=403
    )
    assert "forbidden" in forbidden.text
    failing = False
    done = keyed.post("/subscriptions/", {**form, "csrf_token": csrf_of(page)}, headers=ADMIN, status=303)
    assert done.location.endswith("/subscriptions/")
    wait_for(lambda: len(receiver.ok()) == 2, what="the redelivered messages")
    assert "2 dead letter(s)" in keyed.get("/subscriptions/", headers={**ADMIN, "Accept": "text/html"}).text


def test_the_page_needs_a_key(keyed):
    assert keyed.get("/subscriptions/", headers={"Accept": "text/html"}, status=303).location.endswith(
        "/dashboard/"
    )
    assert (
        keyed.get("/subscriptions/", headers={"Accept": "application/json"}, status=401).json["error"]
        == "unauthorized"
    )
