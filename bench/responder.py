"""An echo RPC responder: ``python -m bench.responder EXCHANGE ROUTING_KEY``.

It declares the direct exchange and a shared, auto-deleted queue bound with
the routing key (responders own that topology; the gateway never declares
it), prints ``ready``, then answers every request with its body, copying
``correlation_id``, until it is terminated.  Several processes may share the
queue.
"""

import sys

import pika

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def main(exchange, routing_key):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare(exchange, "direct", durable=False, auto_delete=True)
    queue = f"{exchange}.{routing_key}"
    channel.queue_declare(queue, durable=False, exclusive=False, auto_delete=True)
    channel.queue_bind(queue, exchange, routing_key)

    def answer(channel, method, properties, body):
        reply = pika.BasicProperties(
            correlation_id=properties.correlation_id, content_type=properties.content_type
        )
        channel.basic_publish("", properties.reply_to, body, reply)

    channel.basic_consume(queue, answer, auto_ack=True)
    print("ready", flush=True)
    channel.start_consuming()  # until SIGTERM; the broker then drops the queue (auto-delete)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
