"""The README's examples run as the README shows them: examples/rpc_responder.py answers
POST /rpc, examples/notify_consumer.py prints what POST /notify stored."""

import contextlib
import json
import pathlib
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.broker

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
WAIT = 20.0


def read_line(process, timeout=WAIT):
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline().strip() if ready else f"(nothing within {timeout:g} s)"


@contextlib.contextmanager
def example(name, *arguments):
    """Run ``examples/<name>`` until it said ``ready``; stop it with SIGTERM afterwards."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(process) == "ready", process.stderr.read() if process.poll() is not None else ""
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=WAIT)


@pytest.mark.parametrize("name", ["rpc_responder.py", "notify_consumer.py"])
def test_each_example_explains_itself(name):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0 and "usage:" in done.stdout and "--url" in done.stdout


def test_the_rpc_responder_answers_add_patient_201_and_stops_cleanly_on_sigterm(client, amqp, exchange):
    with example("rpc_responder.py", "--exchange", exchange) as responder:
        response = client.post(
            f"/rpc/{exchange}/add_patient",
            b"given:John\nsurname:Smith",
            headers={"Content-Type": "text/plain", "X-Timeout": "5"},
        )
        assert response.status_int == 201
        assert response.json == {"added": {"given": "John", "surname": "Smith"}}
    assert responder.returncode == 0
    deadline = time.monotonic() + WAIT
    while amqp.exchange_exists(exchange) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not amqp.exchange_exists(exchange)  # auto-deleted with its queue once the responder left


def test_the_echo_responder_answers_with_the_body(client, exchange):
    with example("rpc_responder.py", "--answer", "echo", "--exchange", exchange, "--routing-key", "echo"):
        response = client.post(f"/rpc/{exchange}/echo", b"ping", headers={"Content-Type": "text/x-ping"})
    assert response.status_int == 200
    assert (response.body, response.content_type) == (b"ping", "text/x-ping")


def test_the_notify_consumer_prints_each_message_and_acknowledges_it(client, amqp, exchange):
    queue = f"{exchange}.scheduling"
    amqp.track(queues=[queue])
    assert client.put(f"/notify/{exchange}/queues/scheduling").status_int == 201
    with example("notify_consumer.py", queue, "--count", "2") as consumer:
        for number in (1, 2):
            body = json.dumps({"patient": number}).encode()
            client.post(f"/notify/{exchange}", body, headers={"Content-Type": "application/json"})
        assert [read_line(consumer), read_line(consumer)] == ['{"patient": 1}', '{"patient": 2}']
        assert consumer.wait(timeout=WAIT) == 0  # --count reached
    assert amqp.queue_depth(queue) == 0  # both acknowledged
