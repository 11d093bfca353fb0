"""``amqp_url`` with several nodes: a node that cannot be reached is skipped for the next one.

The real failover (a node of a running cluster killed or frozen under load)
is in ``tests/cluster``; here the shared node is listed with addresses where
nothing listens, in either order (each process shuffles the list).
"""

import pytest
import webtest

from harness.server import free_port

pytestmark = pytest.mark.broker

LIVE = "amqp://guest:guest@127.0.0.1:5672/%2F"


def dead():
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"


def test_the_gateway_serves_through_the_node_that_answers(make_stack, amqp, exchange):
    for _ in range(20):  # until the process's shuffle puts a dead node first
        stack = make_stack(amqp_url=f"{dead()} {LIVE}\n  {dead()}", connect_timeout="2")
        if stack.gateway.broker._nodes.current.port != 5672:
            break
    assert len(stack.gateway.settings.amqp_url) == 3
    assert stack.gateway.broker._nodes.current.port != 5672
    client = webtest.TestApp(stack, lint=True)
    assert client.get("/health").json == {"broker": "ok"}
    queue = f"{exchange}.c"
    amqp.track(queues=[queue])
    client.put(f"/notify/{exchange}/queues/c", status=201)
    client.post(f"/notify/{exchange}", b"via the live node", headers={"Idempotency-Key": "n1"}, status=202)
    assert amqp.get(queue)[1] == b"via the live node"


def test_no_node_answering_is_503_with_retry_after(make_stack):
    stack = make_stack(amqp_url=f"{dead()} {dead()} {dead()}", connect_timeout="1", retry_after="7")
    client = webtest.TestApp(stack, lint=True)
    health = client.get("/health", status=503)
    assert health.headers["Retry-After"] == "7"
    response = client.post("/notify/t.nowhere", b"", status=503)
    assert response.json["error"] == "broker_unavailable"
    assert response.headers["Retry-After"] == "7"
