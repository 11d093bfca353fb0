"""The broker goes away while clients send notify batches back to back.

A batch in flight when the broker goes must still answer every line
(200, one result a line) as confirmed (202) or failed (503), never
unknown; afterwards every line reported 202 must be in the durable queue,
and the queue may hold only lines that were sent.  A batch that starts
while the broker is away fails whole (503 with Retry-After, nothing
published), or, sent on a connection not yet known lost, with every line
503.  As in test_broker_restart: a clean ``stop_app`` and a SIGKILL of the
node, which keeps only what reached the disk.
"""

import json
import time
import uuid

import pytest
import requests

from .amqp_tools import drain_message_ids
from .load import Load, Request, summary, unanswered, wait_until_healthy, without_retry_after
from .test_broker_restart import crash, stop_app

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

CLIENT_THREADS = 4
LINES = 1000  # a batch of max_batch_messages: the broker is most likely to go while one is in flight
BEFORE = 2.0  # seconds of load before the broker goes
RECOVERY = 6.0  # as test_broker_restart (faults.ini: reconnect_max_delay 2)
AFTER = 2.0


def batch_factory(base_url, exchange, run_id):
    """Batches of ``LINES`` lines, each line's message_id its own ``idempotency_key``."""

    def make(worker):
        batch = f"{run_id}-{worker.index}-{worker.next_number()}"
        lines = (
            json.dumps({"body": f"{batch}-{i}", "idempotency_key": f"{batch}-{i}"}) for i in range(LINES)
        )
        body = ("\n".join(lines) + "\n").encode()
        headers = {"Content-Type": "application/x-ndjson"}
        return Request("batch", batch, f"{base_url}/notify/{exchange}/batch", headers, body)

    return make


def line_keys(outcome):
    return [f"{outcome.key}-{i}" for i in range(LINES)]


@pytest.mark.parametrize("fault", [stop_app, crash], ids=["stop_app", "crash"])
def test_every_line_of_a_batch_cut_by_the_broker_is_confirmed_or_failed(
    private_broker, private_gateway, names, fault
):
    url = private_gateway.url
    exchange = names("batchstop", private_broker.amqp_url)
    queue = f"{exchange}.sink"
    assert requests.put(f"{url}/notify/{exchange}/queues/sink", timeout=10).status_code == 201

    load = Load(batch_factory(url, exchange, uuid.uuid4().hex[:6]), threads=CLIENT_THREADS, timeout=30)
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

    sent, confirmed, failed_lines, cut = set(), set(), set(), []
    for outcome in outcomes:
        keys = line_keys(outcome)
        sent.update(keys)
        if outcome.status != 200:
            continue
        answer = json.loads(outcome.body)
        results = answer["results"]
        assert len(results) == LINES, "a line without a result"
        assert [result["message_id"] for result in results] == keys, "results out of order"
        assert {result["status"] for result in results} <= {202, 503}, summary(outcomes)
        assert answer["accepted"] == sum(result["status"] == 202 for result in results)
        assert answer["failed"] == LINES - answer["accepted"]
        confirmed.update(key for key, result in zip(keys, results, strict=True) if result["status"] == 202)
        failed_lines.update(key for key, result in zip(keys, results, strict=True) if result["status"] == 503)
        if answer["failed"]:
            cut.append(answer["accepted"])
    in_queue = set(stored)
    lost = confirmed - in_queue
    print(
        f"\nbroker {fault.__name__} under notify batches of {LINES}: "
        f"{len(outcomes)} batches {summary(outcomes)}; "
        f"lines sent {len(sent)}, reported 202 {len(confirmed)}, reported 503 in a 200 {len(failed_lines)}; "
        f"batches cut mid-way (lines confirmed before the cut) {cut}; in queue {len(stored)} "
        f"({len(in_queue)} distinct); lost {len(lost)}; "
        f"stored though reported 503 {len(in_queue & failed_lines)}"
    )

    assert not lost, f"reported 202 but not in the queue: {sorted(lost)[:10]}"
    assert in_queue <= sent, "the queue holds messages nobody sent"
    assert not unanswered(outcomes), f"requests without an HTTP answer: {unanswered(outcomes)[:3]}"
    assert set(summary(outcomes)) <= {200, 503}, summary(outcomes)
    assert not without_retry_after(outcomes), without_retry_after(outcomes)[:3]
    # A SIGKILL cannot confirm what it had read: a batch in flight is cut.  A clean stop_app may
    # confirm everything it read before it closes the connections, or not (both were seen).
    assert cut or fault is stop_app, (
        "no batch was in flight when the broker died: the fault missed its moment"
    )
    during = [outcome for outcome in outcomes if down_at < outcome.started < restarting_at]
    assert during, "no batch was sent while the broker was away"
    assert not any(outcome.status == 200 and json.loads(outcome.body)["accepted"] for outcome in during)
    assert healthy_after is not None, f"/health not 200 within {RECOVERY:g} s of the restart"
    after = [outcome for outcome in outcomes if outcome.started > started_at + RECOVERY]
    assert after and all(outcome.status == 200 for outcome in after), summary(after)
    assert all(json.loads(outcome.body)["accepted"] == LINES for outcome in after)
