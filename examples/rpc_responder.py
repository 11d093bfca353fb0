"""An RPC responder for Hutch's ``POST /rpc/{exchange}/{routing_key}`` (pika 1.x).

Responders own their topology: this one declares the direct exchange and a shared,
auto-deleted queue bound with the routing key, prints ``ready``, then answers every
request on ``reply_to`` with the request's ``correlation_id``, until it is stopped
(Ctrl-C or SIGTERM); several copies may share the queue.

    .venv/bin/python examples/rpc_responder.py                      # answers POST /rpc/api/add_patient
    .venv/bin/python examples/rpc_responder.py --answer echo --exchange bench --routing-key echo
"""

import argparse
import json
import signal
import sys

import pika

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def add_patient(properties, body):
    """``given:John\\nsurname:Smith`` -> 201 ``{"added": {...}}`` (the header ``http_status``: the status)."""
    fields = dict(line.split(":", 1) for line in body.decode().splitlines() if ":" in line)
    reply = pika.BasicProperties(content_type="application/json", headers={"http_status": 201})
    return reply, json.dumps({"added": fields}).encode()


def echo(properties, body):
    """The request's body and content type, unchanged (200)."""
    return pika.BasicProperties(content_type=properties.content_type), body


ANSWERS = {"add_patient": add_patient, "echo": echo}


def serve(url, exchange, routing_key, answer):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange, "direct", durable=False, auto_delete=True)
    queue = f"{exchange}.{routing_key}"
    channel.queue_declare(queue, durable=False, exclusive=False, auto_delete=True)
    channel.queue_bind(queue, exchange, routing_key)

    def on_request(channel, method, properties, body):
        reply, reply_body = answer(properties, body)
        reply.correlation_id = properties.correlation_id  # lets the caller match the reply
        channel.basic_publish("", properties.reply_to, reply_body, reply)

    channel.basic_consume(queue, on_request, auto_ack=True)
    print("ready", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    finally:
        if connection.is_open:
            connection.close()  # the broker then drops the queue and exchange (auto-delete)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=AMQP_URL, help="the broker (default %(default)s)")
    parser.add_argument("--exchange", default="api", help="the direct exchange (default api)")
    parser.add_argument("--routing-key", default="add_patient", help="the routing key (default add_patient)")
    parser.add_argument("--answer", choices=sorted(ANSWERS), default="add_patient", help="what to answer")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM closes the connection like Ctrl-C
    serve(args.url, args.exchange, args.routing_key, ANSWERS[args.answer])


if __name__ == "__main__":
    sys.exit(main())
