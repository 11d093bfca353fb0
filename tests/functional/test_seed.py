"""The seed's programs (examples/seed/idioms.py: amqplib's idioms on py-amqp) against the gateway:
its consumers get what HTTP clients post, including on a queue the gateway registered as quorum,
and its responder answers POST /rpc."""

import subprocess
import sys

import pytest
import webtest

from .test_examples import EXAMPLES, WAIT, example, read_line

pytestmark = pytest.mark.broker

SEED = "seed/idioms.py"


@pytest.fixture
def quorum_client(make_stack):
    """A gateway that registers quorum queues, as production.ini does."""
    return webtest.TestApp(make_stack(notify_queue_type="quorum"), lint=True)


def test_the_seed_consumer_declares_a_queue_the_gateway_registered_as_quorum(quorum_client, amqp, exchange):
    queue = f"{exchange}.scheduling"
    amqp.track(queues=[queue])
    answer = quorum_client.put(f"/notify/{exchange}/queues/scheduling", status=201)
    assert answer.json["queue_type"] == "quorum"
    with example(SEED, "notify-consume", exchange, "scheduling", "--count", "2") as consumer:
        for text in (b"given:John\nsurname:Smith", b"given:Jane"):
            quorum_client.post(
                f"/notify/{exchange}", text, headers={"Content-Type": "text/plain"}, status=202
            )
        assert [read_line(consumer) for _ in range(3)] == ["given:John", "surname:Smith", "given:Jane"]
        assert consumer.wait(timeout=20) == 0
    assert amqp.queue_depth(queue) == 0  # each acknowledged


def test_the_seed_consumer_as_written_is_refused_by_a_quorum_queue(quorum_client, amqp, exchange):
    """Why the argument is needed: the original declaration clashes with the registered queue."""
    amqp.track(queues=[f"{exchange}.reporting"])
    quorum_client.put(f"/notify/{exchange}/queues/reporting", status=201)
    refused = subprocess.run(
        [sys.executable, str(EXAMPLES / SEED), "notify-consume", exchange, "reporting", "--queue-type", ""],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert refused.returncode != 0 and "ready" not in refused.stdout
    assert "x-queue-type" in refused.stderr and "PRECONDITION_FAILED" in refused.stderr


def test_the_seed_broadcast_consumer_gets_what_http_clients_broadcast(client, exchange):
    with example(SEED, "broadcast-consume", exchange, "--count", "1") as consumer:
        answer = client.post(f"/broadcast/{exchange}", b"AL 24: FL 7", headers={"Content-Type": "text/plain"})
        assert answer.json["routed"] is True
        assert read_line(consumer) == "AL 24: FL 7"
        assert consumer.wait(timeout=20) == 0


def test_the_seed_responder_answers_post_rpc(client, exchange):
    """It copies no correlation_id, and py-amqp marks its str reply ``content_encoding: utf-8``: no HTTP
    coding, so it comes back as X-Amqp-Content-Encoding (as Content-Encoding, clients fail to decode)."""
    with example(SEED, "respond", exchange, "add_patient"):
        response = client.post(f"/rpc/{exchange}/add_patient", b"Test message!", headers={"X-Timeout": "5"})
    assert response.status_int == 200 and response.body == b"Return Value"
    assert response.headers["X-Amqp-Content-Encoding"] == "utf-8"
    assert "Content-Encoding" not in response.headers


def test_the_seed_requester_calls_the_seed_responder(exchange):
    with (
        example(SEED, "respond", exchange, "add_patient"),
        example(SEED, "call", exchange, "add_patient", "Test message!") as caller,
    ):
        assert read_line(caller) == "Response: Return Value"
        assert caller.wait(timeout=20) == 0
