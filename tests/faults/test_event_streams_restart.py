"""Fault: the broker restarts under open event streams (a private node, never the shared one).

The event servers lose their connection, reconnect, declare the broadcast exchange and its history
binding again (a restart forgets a transient exchange), and consume the exchange's stream from the
offset after the last one they fanned out: the open streams stay open, and every message published
after the restart reaches each of them exactly once, with nothing of before repeated.  A stream that
resumes later with Last-Event-ID gets exactly what it missed across the restart.
"""

import contextlib
import time

import pika
import pytest
import requests

from hutch.amqp.history import HistoryPolicy
from tests.dashboard.sse_client import SseStream

from .load import wait_until_healthy

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

OUTAGE = 3.0  # seconds the broker stays down
RECOVERY = (
    30.0  # generous: the gateway and the event servers reconnect with back-off (faults.ini: 2 s at most)
)


def broadcast(url, exchange, body, deadline):
    """Publish, retrying the 503s the gateway answers until it has reconnected."""
    while True:
        with contextlib.suppress(requests.RequestException):
            headers = {"Content-Type": "text/plain"}
            answer = requests.post(f"{url}/broadcast/{exchange}", data=body, headers=headers, timeout=10)
            if answer.status_code == 202:
                assert answer.json()["routed"] is True
                return
            assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, f"{body!r} never published"
        time.sleep(0.2)


def next_message(stream, timeout=30.0):
    return stream.wait_for(lambda event: event.event == "message" and event.comment is None, timeout)


def test_open_streams_resume_after_a_broker_restart_without_loss_or_repeat(
    private_broker, private_gateway, names
):
    exchange = names("ev", private_broker.amqp_url)
    url = private_gateway.url
    deadline = time.monotonic() + RECOVERY
    broadcast(url, exchange, "before 0", deadline)
    streams = [SseStream(f"{url}/events/{exchange}", timeout=30) for _ in range(4)]
    try:
        for stream in streams:
            assert stream.status == 200
            assert next_message(stream).json["body"] == "before 0"  # history on open
            stream.wait_for(lambda event: event.event == "ready")
        broadcast(url, exchange, "before 1", deadline)
        first_ids = {next_message(stream).id for stream in streams}
        assert len(first_ids) == 1  # one offset, the same on every event-server process
        before_1 = first_ids.pop()

        with private_broker.app_stopped():
            time.sleep(OUTAGE)
        assert wait_until_healthy(url, RECOVERY) is not None, private_gateway.logs()
        after = [f"after {n}" for n in range(3)]
        deadline = time.monotonic() + RECOVERY
        for body in after:
            broadcast(url, exchange, body, deadline)
        for stream in streams:
            received = [next_message(stream, RECOVERY) for _ in after]
            assert [event.json["body"] for event in received] == after
            assert all(int(event.id) > int(before_1) for event in received)
        # nothing else (no repeat of "before 1") is waiting on any stream
        for stream in streams:
            with pytest.raises(TimeoutError):
                next_message(stream, timeout=1.5)
    finally:
        for stream in streams:
            stream.close()

    # a client away during the restart resumes with exactly what it missed
    with SseStream(f"{url}/events/{exchange}", {"Last-Event-ID": before_1}, timeout=30) as late:
        assert late.status == 200
        resent = [next_message(late).json["body"] for _ in after]
        assert resent == after
        assert late.wait_for(lambda event: event.event in ("ready", "message", "gap")).event == "ready"
    with contextlib.suppress(Exception), amqp_channel(private_broker.amqp_url) as channel:
        channel.queue_delete(HistoryPolicy.queue(exchange))


@contextlib.contextmanager
def amqp_channel(amqp_url):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()
