"""The broker closes every connection in the middle of RPC and broadcast load.

``rabbitmqctl close_all_connections`` (on the private node) cuts the
gateway's connections with calls and publishes in flight, and the
responder's too.  The requests in flight must fail cleanly (503 with
Retry-After, or 504 for a call whose reply was lost), never a 500 or a
hang; a reply must never reach another call; later requests succeed.
"""

import time
import uuid

import pytest

from .load import Load, alternate, broadcast_factory, rpc_factory, summary, unanswered, without_retry_after
from .responders import Responder, echo

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

CLIENT_THREADS = 6  # half RPC, half broadcast
RPC_TIMEOUT = 3.0
RESPONDER_DELAY = 0.1  # keeps calls in flight when the connections are cut
KILLS = 2
BETWEEN_KILLS = 3.0
RECOVERY = 6.0  # later requests must succeed this soon after the last kill
AFTER = 3.0
NO_HANG = RPC_TIMEOUT + 2.0 + 2.0  # the broker client's GRACE, plus a margin
EXPECTED = {"rpc": {200, 503, 504}, "broadcast": {202, 503}}


def slow_echo(channel, method, properties, body):
    time.sleep(RESPONDER_DELAY)
    echo(channel, method, properties, body)


def test_killed_connections_fail_in_flight_requests_cleanly(private_broker, private_gateway, names):
    url = private_gateway.url
    service = names("killed", private_broker.amqp_url)
    fanout = names("killedb", private_broker.amqp_url)
    responder = Responder(private_broker.amqp_url, service, "echo", slow_echo, reconnect=True).start()
    run_id = uuid.uuid4().hex[:6]
    load = Load(
        alternate(
            rpc_factory(url, service, "echo", run_id, RPC_TIMEOUT),
            broadcast_factory(url, fanout, run_id),
        ),
        threads=CLIENT_THREADS,
        timeout=20,
    )
    kills = []
    load.start()
    try:
        time.sleep(3.0)
        for _ in range(KILLS):
            kills.append(time.monotonic())  # rabbitmqctl takes a while: the cut may come at once
            private_broker.ctl("close_all_connections", "hutch fault test")
            time.sleep(BETWEEN_KILLS)
        time.sleep(max(0.0, kills[-1] + RECOVERY + AFTER - time.monotonic()))
    finally:
        outcomes = load.stop()
        responder.stop()

    slowest = max(outcome.duration for outcome in outcomes)
    by_kind = {kind: [o for o in outcomes if o.kind == kind] for kind in EXPECTED}
    print(
        f"\nconnections killed {KILLS} times under load: "
        + "; ".join(f"{kind} {summary(found)}" for kind, found in by_kind.items())
        + f"; slowest answer {slowest:.2f} s; responder served {len(responder.requests)} requests"
    )

    assert not unanswered(outcomes), f"requests without an HTTP answer: {unanswered(outcomes)[:3]}"
    for kind, expected in EXPECTED.items():
        assert set(summary(by_kind[kind])) <= expected, (kind, summary(by_kind[kind]))
    assert not without_retry_after(outcomes), without_retry_after(outcomes)[:3]
    crossed = [o for o in by_kind["rpc"] if o.status == 200 and o.body != o.key.encode()]
    assert not crossed, f"calls answered with another call's reply: {crossed[:3]}"
    assert slowest <= NO_HANG, f"a request took {slowest:.1f} s"

    before = [o for o in outcomes if o.started + o.duration < kills[0]]
    assert before and all(o.ok for o in before), [o for o in before if not o.ok][:5]
    hit = [o for o in outcomes if kills[0] - NO_HANG < o.started and not o.ok]
    assert hit, "the killed connections failed no request: the test did not catch anything in flight"
    after = [o for o in outcomes if o.started > kills[-1] + RECOVERY]
    assert len(after) >= CLIENT_THREADS, "too little load after the recovery to judge it"
    assert all(o.ok for o in after), summary(after)
