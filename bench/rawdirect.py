"""Hutch's direct connection in one process and one thread, without HTTP.

The same two loops as ``rawpika`` for confirms and RPC, through
``hutch.amqp.direct_publisher`` instead of pika's BlockingConnection: what
the AMQP part of a notify or an RPC request costs on Hutch's own path, so
an HTTP request's latency splits into hello-world, this, and the WSGI stack.
"""

import pika

from hutch.amqp.direct_publisher import DirectPublisher
from hutch.amqp.nodes import Nodes
from hutch.amqp.topology import NOTIFY
from hutch.messages import Message

from .broker import AMQP_URL
from .rawpika import BODY, timed_loop


def declared_by_the_benchmark(exchange, kind, again):
    """The benchmark declared the exchange (``Housekeeper``) before the loop."""


def direct_publisher():
    nodes = Nodes([AMQP_URL], lambda _parameters: None, shuffle=lambda _parameters: None)
    publisher = DirectPublisher(nodes, declared_by_the_benchmark)
    publisher.start()
    return publisher


def publish_with_confirms(exchange, seconds):
    """``exchange`` must exist with a durable queue bound; persistent, mandatory, one confirm each."""
    publisher = direct_publisher()
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id="m")
    message = Message(BODY, properties)
    try:
        if not publisher.publish("notify", NOTIFY, exchange, message):
            raise RuntimeError(f"nothing is bound to {exchange}")
        return timed_loop(lambda: publisher.publish("notify", NOTIFY, exchange, message), seconds)
    finally:
        publisher.close()


def rpc_round_trip(exchange, routing_key, seconds):
    """Calls to the echo responders, one at a time, each on a reply channel of the connection."""
    publisher = direct_publisher()
    message = Message(BODY, pika.BasicProperties(content_type="application/json"))

    def call():
        reply = publisher.call(exchange, routing_key, message, 5.0)
        if reply.body != BODY:
            raise RuntimeError("the echo responder answered another call")

    try:
        call()  # the first call also opens the connection
        return timed_loop(call, seconds)
    finally:
        publisher.close()
