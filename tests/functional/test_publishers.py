"""Both ``publisher`` settings give the same answers against the real RabbitMQ.

``direct`` (the default, which the rest of the suite runs) and ``pika`` (the
fallback an operator can choose with one ini line) are built side by side.
"""

import concurrent.futures

import pytest
import webtest

from .helpers import PUBLISHERS

pytestmark = pytest.mark.broker


@pytest.fixture(params=PUBLISHERS)
def client(request, make_stack):
    stack = make_stack(publisher=request.param)
    assert stack.gateway.broker.direct is (request.param == "direct")
    return webtest.TestApp(stack, lint=True)


def test_broadcast_says_whether_a_queue_got_it(client, amqp, exchange):
    assert client.post(f"/broadcast/{exchange}", b"nobody", status=202).json["routed"] is False
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    assert client.post(f"/broadcast/{exchange}", b"somebody", status=202).json["routed"] is True
    assert amqp.get(queue)[1] == b"somebody"


def test_notify_is_409_without_a_queue_and_202_once_stored(client, amqp, unique_name):
    exchange = unique_name()
    amqp.track(exchanges=[exchange], queues=[f"{exchange}.keep"])
    assert client.post(f"/notify/{exchange}", b"lost?", status=409).json["error"] == "unroutable"
    client.put(f"/notify/{exchange}/queues/keep", status=201)
    client.post(f"/notify/{exchange}", b"kept", headers={"Idempotency-Key": "k-1"}, status=202)
    properties, body = amqp.get(f"{exchange}.keep")
    assert (body, properties.message_id, properties.delivery_mode) == (b"kept", "k-1", 2)


def test_a_vanished_exchange_is_declared_again(client, amqp, exchange):
    client.post(f"/broadcast/{exchange}", b"first", status=202)
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    amqp.unbind(queue, exchange)  # the last binding gone: RabbitMQ deletes the auto-delete exchange
    assert not amqp.exchange_exists(exchange)
    assert client.post(f"/broadcast/{exchange}", b"second", status=202).json["routed"] is False
    assert amqp.exchange_exists(exchange)


def test_returns_reach_their_own_requests_with_many_in_flight(client, amqp, unique_name):
    """Concurrent broadcasts to a bound and an unbound exchange: each answer names its own fate."""
    bound, unbound = unique_name(), unique_name()
    amqp.track(exchanges=[bound, unbound])
    client.post(f"/broadcast/{bound}", b"declare", status=202)
    queue = amqp.declare_queue(exchange=bound, exclusive=True)
    targets = [bound, unbound] * 40

    def send(target):
        return target, client.post(f"/broadcast/{target}", b"x", status=202).json["routed"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, targets))
    assert all(routed is (target == bound) for target, routed in answers), answers
    assert amqp.queue_depth(queue) == targets.count(bound)
