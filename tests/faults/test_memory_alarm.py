"""A memory alarm makes the broker block every publishing connection.

``rabbitmqctl set_vm_memory_high_watermark 0.0001`` (on the private node)
raises the alarm; RabbitMQ then stops reading from each connection that
publishes and tells it ``connection.blocked``.  A publish must then answer
503 with Retry-After within a second instead of holding a thread until its
timeout; once the watermark is restored the gateway serves again, and no
confirmed notify message is lost.
"""

import collections
import time
import uuid

import pytest
import requests

from .amqp_tools import drain_message_ids
from .load import (
    Arrivals,
    Load,
    alternate,
    broadcast_factory,
    notify_factory,
    rpc_factory,
    summary,
    unanswered,
    wait_until_healthy,
    without_retry_after,
)
from .responders import Responder, echo

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

ALARM = "0.0001"
NORMAL = "0.4"  # RabbitMQ's default
ANSWER_WITHIN = 1.0  # what a publish may take while the broker blocks publishing
CLIENT_THREADS = 4
ALARM_FOR = 3.0
RECOVERY = 5.0
AFTER = 2.0
RPC_TIMEOUT = 4.0


def run_through_alarm(private_broker, url, factory, arrivals=None):
    """Load (and ``arrivals``, an ``Arrivals``) before, during and after the alarm; the outcomes and
    the alarm's window."""
    load = Load(factory, threads=CLIENT_THREADS, timeout=20)
    load.start()
    if arrivals is not None:
        arrivals.start()
    try:
        time.sleep(2.0)
        with private_broker.memory_alarm(ALARM, NORMAL):
            alarmed = time.monotonic()
            time.sleep(ALARM_FOR)
            clearing = time.monotonic()
        cleared = time.monotonic()
        healthy_after = wait_until_healthy(url, RECOVERY)
        time.sleep(max(0.0, cleared + RECOVERY + AFTER - time.monotonic()))
    finally:
        outcomes = load.stop()
        if arrivals is not None:
            outcomes = sorted(outcomes + arrivals.stop(), key=lambda outcome: outcome.started)
    window = {"alarmed": alarmed, "clearing": clearing, "cleared": cleared}
    return outcomes, window, healthy_after


def check_alarm_outcomes(outcomes, window, healthy_after):
    # requests that started once the alarm was surely in force (the broker checks it at once)
    during = [o for o in outcomes if window["alarmed"] + 0.5 < o.started < window["clearing"]]
    slow = [o for o in during if o.duration > ANSWER_WITHIN]
    assert not unanswered(outcomes), f"requests without an HTTP answer: {unanswered(outcomes)[:3]}"
    assert all(o.status in (200, 202, 503) for o in outcomes), summary(outcomes)
    assert not without_retry_after(outcomes), without_retry_after(outcomes)[:3]
    assert during and all(o.status == 503 for o in during), summary(during)
    assert not slow, f"{len(slow)} of {len(during)} answers took over {ANSWER_WITHIN:g} s: {slow[:3]}"
    assert healthy_after is not None, f"/health not 200 within {RECOVERY:g} s of clearing the alarm"
    after = [o for o in outcomes if o.started > window["cleared"] + RECOVERY]
    assert len(after) >= CLIENT_THREADS, "too little load after the recovery to judge it"
    assert all(o.ok for o in after), summary(after)


def report(title, outcomes, window, healthy_after):
    during = [o for o in outcomes if window["alarmed"] < o.started < window["clearing"]]
    slowest = max((o.duration for o in during), default=0.0)
    print(
        f"\n{title}: all {summary(outcomes)}; during the alarm {summary(during)}, "
        f"slowest {slowest:.3f} s; /health 200 {healthy_after and round(healthy_after, 2)} s after clearing"
    )


def test_publishes_fail_fast_while_the_broker_blocks_them(private_broker, private_gateway, names):
    url = private_gateway.url
    durable = names("alarm", private_broker.amqp_url)
    fanout = names("alarmb", private_broker.amqp_url)
    assert requests.put(f"{url}/notify/{durable}/queues/sink", timeout=10).status_code == 201
    run_id = uuid.uuid4().hex[:6]
    factory = alternate(notify_factory(url, durable, run_id), broadcast_factory(url, fanout, run_id))

    outcomes, window, healthy_after = run_through_alarm(private_broker, url, factory)
    stored = collections.Counter(drain_message_ids(private_broker.amqp_url, f"{durable}.sink"))
    report("memory alarm under notify and broadcast load", outcomes, window, healthy_after)

    confirmed = {o.key for o in outcomes if o.kind == "notify" and o.ok}
    assert not confirmed - stored.keys(), "confirmed notify messages were lost"
    check_alarm_outcomes(outcomes, window, healthy_after)


def test_calls_fail_fast_while_the_broker_blocks_publishing(private_broker, private_gateway, names):
    url = private_gateway.url
    service = names("alarmr", private_broker.amqp_url)
    responder = Responder(private_broker.amqp_url, service, "echo", echo, reconnect=True).start()
    try:
        factory = rpc_factory(url, service, "echo", uuid.uuid4().hex[:6], RPC_TIMEOUT)
        # The broker stops reading the responder's connection mid-reply (after the content header
        # that blocked it), so every client thread can be left waiting on a reply that comes only
        # after the alarm, and the gateway publishes nothing that would tell it of the alarm:
        # calls that keep arriving are what must fail fast.
        arrivals = Arrivals(factory, interval=0.1, timeout=20)
        outcomes, window, healthy_after = run_through_alarm(private_broker, url, factory, arrivals)
    finally:
        responder.stop()
    report("memory alarm under RPC load", outcomes, window, healthy_after)

    crossed = [o for o in outcomes if o.status == 200 and o.body != o.key.encode()]
    assert not crossed, f"calls answered with another call's reply: {crossed[:3]}"
    check_alarm_outcomes(outcomes, window, healthy_after)
