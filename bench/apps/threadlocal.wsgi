"""A reference point, not a gateway: one pika BlockingConnection per WSGI thread.

POST /.../{exchange} publishes the body mandatory with a publisher confirm
to the transient fanout exchange (declared once per thread), like Hutch's
broadcast, and answers ``routed`` — but with no I/O thread, no hand-off
between threads, no reconnect, no heartbeats while idle and no error
mapping.  It shows what the hand-off to Hutch's I/O thread costs; GET
answers 200 so the runner can tell the server is up.
"""

import json
import threading
import uuid

import pika

PARAMETERS = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=0")
local = threading.local()


def channel_for(exchange):
    if getattr(local, "channel", None) is None:
        local.channel = pika.BlockingConnection(PARAMETERS).channel()
        local.channel.confirm_delivery()
        local.declared = set()
    if exchange not in local.declared:
        local.channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=True)
        local.declared.add(exchange)
    return local.channel


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"threadlocal\n"]
    exchange = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    message_id = uuid.uuid4().hex
    properties = pika.BasicProperties(content_type=environ.get("CONTENT_TYPE"), message_id=message_id)
    try:
        channel_for(exchange).basic_publish(exchange, "", body, properties, mandatory=True)
        routed = True
    except pika.exceptions.UnroutableError:
        routed = False
    except pika.exceptions.AMQPError:
        local.channel = None
        raise
    answer = json.dumps({"message_id": message_id, "exchange": exchange, "routed": routed}).encode()
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
    return [answer]
