"""Idempotent retries across gateway hosts: two mod_wsgi-express gateways sharing one Redis.

50 clients send the same request with the same Idempotency-Key at once,
alternating between the two hosts; a real queue must hold exactly one
message, and every client must get the same 2xx answer.
"""

import concurrent.futures
import pathlib
import threading

import pytest
import requests

from harness import amqp, redis_store
from harness.server import GatewayServer
from tests.e2e.client import FULL_KEY, PREFIX

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.redis]

HERE = pathlib.Path(__file__).resolve().parent
CLIENTS = 50


@pytest.fixture(scope="module")
def hosts():
    """Two gateway hosts (2 processes x 15 threads each) on the same Redis and RabbitMQ."""
    servers = []
    try:
        for _ in range(2):
            servers.append(GatewayServer(HERE / "idempotency.ini", prefix=PREFIX, threads=15).start())
        yield servers
    finally:
        for server in servers:
            server.stop()
            server.cleanup()


@pytest.fixture
def exchange():
    name = amqp.unique("idem")
    queues = []
    yield name, queues
    amqp.delete(exchanges=[name], queues=queues)
    client = redis_store.shared()
    redis_store.forget_exchanges(client, name)
    client.close()


def same_request_at_once(urls, key, body):
    """``CLIENTS`` threads released together, each POSTing once to ``urls[i % len(urls)]``."""
    start = threading.Barrier(CLIENTS)
    headers = {"Authorization": f"Bearer {FULL_KEY}", "Idempotency-Key": key, "Content-Type": "text/plain"}

    def send(index):
        with requests.Session() as session:
            start.wait(timeout=30)
            return session.post(urls[index % len(urls)], data=body, headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(send, range(CLIENTS)))


def check_one_publish(answers):
    statuses = sorted({answer.status_code for answer in answers})
    assert statuses == [202], [
        (answer.status_code, answer.text) for answer in answers if answer.status_code != 202
    ]
    first = [answer for answer in answers if "Idempotent-Replayed" not in answer.headers]
    assert len(first) == 1, f"{len(first)} answers were not replays"
    assert all(
        answer.headers.get("Idempotent-Replayed") == "true" for answer in answers if answer is not first[0]
    )
    assert len({answer.content for answer in answers}) == 1, "the replays differ from the first answer"


def test_concurrent_notify_over_two_hosts_stores_exactly_one_message(hosts, exchange):
    name, queues = exchange
    queues.append(f"{name}.sink")
    register = requests.put(
        f"{hosts[0].url}/notify/{name}/queues/sink",
        headers={"Authorization": f"Bearer {FULL_KEY}"},
        timeout=30,
    )
    assert register.status_code == 201, register.text

    answers = same_request_at_once(
        [f"{host.url}/notify/{name}" for host in hosts], "order-4711", b"one order"
    )

    check_one_publish(answers)
    assert answers[0].json() == {"message_id": "order-4711", "exchange": name}
    assert amqp.queue_depth(f"{name}.sink") == 1


def test_concurrent_broadcast_over_two_hosts_publishes_exactly_once(hosts, exchange):
    name, _ = exchange
    with amqp.BoundQueue(name) as listener:
        answers = same_request_at_once(
            [f"{host.url}/broadcast/{name}" for host in hosts], "score-1", b"AL 24"
        )
        check_one_publish(answers)
        assert answers[0].json()["routed"] is True
        assert listener.get(timeout=5)[2] == b"AL 24"
        assert listener.get(timeout=0.5) is None
