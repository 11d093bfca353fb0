"""Raw pika in one process and one thread: the floor under any gateway.

Three loops, each for a fixed time: publish without confirms (to a
transient fanout exchange, like broadcast), publish persistent + mandatory
with a confirm per message (to a durable fanout exchange with a durable
queue, like notify), and an RPC round trip over direct reply-to to the echo
responders.  Each reports operations/s and the p50/p99 of one operation.
"""

import statistics
import time
import uuid

import pika

from .broker import AMQP_URL

REPLY_TO = "amq.rabbitmq.reply-to"
BODY = b'{"score":"AL 24: FL 7","note":"Touch down by Tim Tebow"}'


def figures(latencies, seconds):
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "operations": len(latencies),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(quantiles[49] * 1000, 3),
        "p99_ms": round(quantiles[98] * 1000, 3),
    }


def timed_loop(operation, seconds):
    latencies = []
    clock = time.perf_counter
    started = clock()
    end = started + seconds
    now = started
    while now < end:
        operation()
        after = clock()
        latencies.append(after - now)
        now = after
    return figures(latencies, now - started)


def publish_without_confirms(exchange, seconds):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=True)
        properties = pika.BasicProperties(content_type="application/json")
        return timed_loop(lambda: channel.basic_publish(exchange, "", BODY, properties), seconds)
    finally:
        connection.close()


def publish_with_confirms(exchange, seconds):
    """``exchange`` must exist with a durable queue bound (Housekeeper.fanout_with_queue)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent
        )
        return timed_loop(
            lambda: channel.basic_publish(exchange, "", BODY, properties, mandatory=True), seconds
        )
    finally:
        connection.close()


def rpc_round_trip(exchange, routing_key, seconds):
    """Calls to the echo responders, one at a time, replies over direct reply-to."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        replies = []
        channel.basic_consume(REPLY_TO, lambda _ch, _m, props, _body: replies.append(props), auto_ack=True)

        def call():
            correlation_id = uuid.uuid4().hex
            properties = pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id)
            channel.basic_publish(exchange, routing_key, BODY, properties)
            deadline = time.monotonic() + 5
            while not replies:
                if time.monotonic() > deadline:
                    raise RuntimeError("no reply from the echo responder within 5 s")
                connection.process_data_events(time_limit=1)
            reply = replies.pop()
            if reply.correlation_id != correlation_id:
                raise RuntimeError("the echo responder answered another call")

        call()  # the first call also waits for the consume-ok
        return timed_loop(call, seconds)
    finally:
        connection.close()
