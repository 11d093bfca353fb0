"""Push delivery under faults: a delivery process SIGKILLed mid-delivery, a broker node killed under load.

The promise is at least once: every message the gateway confirmed (202) reaches the receiver, and a
message delivered twice carries the same ``webhook-id`` both times.  Each test counts sent,
confirmed, delivered (distinct ids) and duplicated, and prints the counts.
"""

import collections
import json
import pathlib
import threading
import time

import pytest
import webtest

from harness.push import SESSION_SECRET, DeliveryProcess, Receiver, wait_for
from harness.redis_node import PrivateRedis
from hutch.delivery import topology
from hutch.settings import parse_settings
from hutch.web.app import make_app

from .amqp_tools import SHARED_AMQP_URL, delete_exchange_and_queues

pytestmark = [pytest.mark.broker, pytest.mark.redis]

APPS = str(pathlib.Path(__file__).resolve().parents[2] / "apps")
SUFFIXES = ("c", "c.dead")


@pytest.fixture
def push_redis():
    with PrivateRedis(persistent=False) as node:
        yield node


def gateway(amqp_url, push_store, queue_type="classic"):
    settings = {
        "apps_directory": APPS,
        "amqp_url": amqp_url,
        "auth": "off",
        "session.secret": SESSION_SECRET,
        "push_store": push_store,
        "push_allow": "http://127.0.0.1: https://",
        "notify_queue_type": queue_type,
        "publish_timeout": "3",
        "connect_timeout": "2",
        "reconnect_max_delay": "1",
    }
    return make_app(parse_settings(settings))


def counts(sent, confirmed, receiver):
    ids = [received.headers["webhook-id"] for received in receiver.ok()]
    tally = collections.Counter(ids)
    return {
        "sent": sent,
        "confirmed": len(confirmed),
        "delivered": len(tally),
        "duplicated": sum(n - 1 for n in tally.values()),
        "lost": len(set(confirmed) - set(tally)),
        "unknown": len(set(tally) - set(confirmed)),
    }


def test_a_delivery_process_killed_mid_delivery_loses_nothing(push_redis, names):
    exchange = names("pushkill")
    app = gateway(SHARED_AMQP_URL, push_redis.url)
    client = webtest.TestApp(app)
    receiver = Receiver(lambda received, count: ("sleep", 0.1, 200)).start()
    first = DeliveryProcess(SHARED_AMQP_URL, push_redis.url).start()
    second = DeliveryProcess(SHARED_AMQP_URL, push_redis.url).start()
    try:
        body = {"url": receiver.url, "concurrency": 4, "retry_schedule": [0.2, 0.5, 1]}
        client.put_json(f"/notify/{exchange}/queues/c/push", body, status=201)
        wait_for(
            lambda: "pushing" in first.log() and "pushing" in second.log(), what="both processes consuming"
        )
        confirmed = []
        for number in range(80):
            response = client.post(f"/notify/{exchange}", json.dumps({"n": number}).encode())
            confirmed.append(response.json["message_id"])
        wait_for(lambda: len(receiver.ok()) >= 15, what="deliveries under way")
        first.kill()  # with up to 4 POSTs in flight and their messages unacked
        wait_for(lambda: set(confirmed) <= set(receiver.ids()), timeout=60, what="every confirmed message")
        result = counts(80, confirmed, receiver)
        print("delivery process SIGKILLed:", result)
        assert result["lost"] == 0 and result["unknown"] == 0
        assert result["delivered"] == 80
    finally:
        client.delete(f"/notify/{exchange}/queues/c/push", expect_errors=True)
        second.stop()
        first.stop()
        receiver.stop()
        app.gateway.broker.close()
        retries = [topology.retry_queue("c", delay) for delay in body["retry_schedule"]]
        delete_exchange_and_queues(SHARED_AMQP_URL, exchange, suffixes=(*SUFFIXES, *retries))


def test_a_broker_node_killed_under_load_loses_no_confirmed_message(private_broker, push_redis):
    """Quorum queues on the private node; the node is SIGKILLed and started again while messages flow."""
    exchange = f"t.pushnode.{time.monotonic_ns() % 10**8}"
    schedule = [0.2, 0.5, 1, 1, 1, 1, 1, 1]
    app = gateway(private_broker.amqp_url, push_redis.url, queue_type="quorum")
    client = webtest.TestApp(app)
    receiver = Receiver().start()
    delivery = DeliveryProcess(private_broker.amqp_url, push_redis.url, notify_queue_type="quorum").start()
    confirmed, sent = [], [0]
    stop = threading.Event()

    def load():
        number = 0
        while not stop.is_set():
            number += 1
            sent[0] += 1
            response = client.post(
                f"/notify/{exchange}", json.dumps({"n": number}).encode(), expect_errors=True
            )
            if response.status_int == 202:
                confirmed.append(response.json["message_id"])
            else:
                assert response.status_int == 503, response.text
                time.sleep(0.05)
            time.sleep(0.01)

    try:
        body = {"url": receiver.url, "concurrency": 8, "retry_schedule": schedule}
        client.put_json(f"/notify/{exchange}/queues/c/push", body, status=201)
        wait_for(lambda: "pushing" in delivery.log(), what="the process consuming")
        publisher = threading.Thread(target=load)
        publisher.start()
        wait_for(lambda: len(receiver.ok()) >= 50, what="deliveries under way")
        before = len(receiver.ok())
        private_broker.crash()
        private_broker.start()
        wait_for(lambda: len(receiver.ok()) >= before + 50, timeout=60, what="deliveries after the restart")
        stop.set()
        publisher.join(30)
        wait_for(lambda: set(confirmed) <= set(receiver.ids()), timeout=60, what="every confirmed message")
        result = counts(sent[0], confirmed, receiver)
        print("broker node SIGKILLed:", result)
        assert result["lost"] == 0  # "unknown" may be > 0: a publish answered 503 may still have been stored
    finally:
        stop.set()
        delivery.stop()
        receiver.stop()
        app.gateway.broker.close()
