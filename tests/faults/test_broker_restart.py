"""The broker restarts while clients publish notify messages at full speed.

The notify idiom promises that nothing is lost: every 2xx must be a message
in the consumer's durable queue afterwards.  While the broker is away every
answer must be a 503 with Retry-After (never a 500, never a hang), and the
gateway must serve again soon after the broker is back, without a restart
of its own.

Two ways down: ``stop_app``/``start_app`` (the issue's fault: a clean
shutdown, which stores every message it had read, confirmed or not) and a
SIGKILL of the node (which keeps only what reached the disk: the fault that
catches a gateway answering 2xx before the broker's confirm; such a mutant
passed the ``stop_app`` run and lost 7 confirmed messages in the crash run).
"""

import collections
import time
import uuid

import pytest
import requests

from .amqp_tools import drain_message_ids
from .load import Load, notify_factory, summary, unanswered, wait_until_healthy, without_retry_after

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

CLIENT_THREADS = 6
BEFORE = 3.0  # seconds of load before the broker stops
OUTAGE = 4.0  # seconds the broker stays down (a crashed node then takes a few more to start)
RECOVERY = 6.0  # the gateway must serve again this soon after start_app (faults.ini: reconnect_max_delay 2)
AFTER = 2.0  # seconds of load once the gateway is expected to have recovered
PUBLISH_TIMEOUT = 5.0  # faults.ini
NO_HANG = PUBLISH_TIMEOUT + 2.0 + 2.0  # the broker client's GRACE, plus a margin


def stop_app(broker):
    """``rabbitmqctl stop_app``, a pause, ``start_app``: the broker shuts down cleanly.

    Returns the window in which the broker was surely down.
    """
    with broker.app_stopped():
        down_at = time.monotonic()
        time.sleep(OUTAGE)
        restarting_at = time.monotonic()
    return down_at, restarting_at


def crash(broker):
    """SIGKILL the broker's Erlang VM, a pause, start the node again on the same data."""
    broker.crash()
    down_at = time.monotonic()
    try:
        time.sleep(OUTAGE)
    finally:
        restarting_at = time.monotonic()
        broker.start()
    return down_at, restarting_at


@pytest.mark.parametrize("fault", [stop_app, crash], ids=["stop_app", "crash"])
def test_a_broker_restart_loses_no_confirmed_notify_message(private_broker, private_gateway, names, fault):
    url = private_gateway.url
    exchange = names("restart", private_broker.amqp_url)
    queue = f"{exchange}.sink"
    assert requests.put(f"{url}/notify/{exchange}/queues/sink", timeout=10).status_code == 201

    load = Load(notify_factory(url, exchange, uuid.uuid4().hex[:6]), threads=CLIENT_THREADS, timeout=20)
    load.start()
    try:
        time.sleep(BEFORE)
        down_at, restarting_at = fault(private_broker)
        started_at = time.monotonic()
        healthy_after = wait_until_healthy(url, RECOVERY)
        time.sleep(max(0.0, started_at + RECOVERY + AFTER - time.monotonic()))
    finally:
        outcomes = load.stop()
    stored = drain_message_ids(private_broker.amqp_url, queue)

    sent = {outcome.key for outcome in outcomes}
    confirmed = {outcome.key for outcome in outcomes if outcome.ok}
    in_queue = collections.Counter(stored)
    lost = confirmed - in_queue.keys()
    duplicated = sum(count - 1 for count in in_queue.values())
    stored_unconfirmed = in_queue.keys() - confirmed
    statuses = summary(outcomes)
    slowest = max(outcome.duration for outcome in outcomes)
    print(
        f"\nbroker {fault.__name__} under notify load: sent {len(sent)} messages in {len(outcomes)} requests "
        f"{statuses}; 2xx {len(confirmed)}; in queue {len(stored)} ({len(in_queue)} distinct); "
        f"lost {len(lost)}; duplicated {duplicated}; stored but never confirmed {len(stored_unconfirmed)}; "
        f"slowest answer {slowest:.2f} s; /health 200 {healthy_after and round(healthy_after, 2)} s "
        f"after start_app"
    )

    assert not lost, f"confirmed but not in the queue: {sorted(lost)[:10]}"
    assert in_queue.keys() <= sent, "the queue holds messages nobody sent"
    assert not unanswered(outcomes), f"requests without an HTTP answer: {unanswered(outcomes)[:3]}"
    assert set(statuses) <= {202, 503}, statuses
    assert not without_retry_after(outcomes), without_retry_after(outcomes)[:3]
    assert slowest <= NO_HANG, f"a request took {slowest:.1f} s"

    during = [outcome for outcome in outcomes if down_at < outcome.started < restarting_at]
    assert during and not any(outcome.ok for outcome in during), "the outage did not fail the publishes"
    assert healthy_after is not None, f"/health not 200 within {RECOVERY:g} s of start_app"
    after = [outcome for outcome in outcomes if outcome.started > started_at + RECOVERY]
    assert len(after) >= CLIENT_THREADS, "too little load after the recovery to judge it"
    assert all(outcome.ok for outcome in after), summary(after)
