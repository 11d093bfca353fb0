"""A consumer of a queue Hutch's ``POST /notify/{exchange}`` delivers to (pika 1.x).

Register the queue first (``PUT /notify/{exchange}/queues/{name}``: Hutch declares the
durable queue ``{exchange}.{name}`` and binds it); then this prints each message's body,
one a line, and acknowledges it only after it was printed, so a message is never lost
if the consumer stops half-way.  It runs until stopped (Ctrl-C or SIGTERM), or until
``--count`` messages were handled.

    .venv/bin/python examples/notify_consumer.py notify.patient.add.scheduling
"""

import argparse
import signal
import sys

import pika

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def consume(url, queue, count=None, out=sys.stdout):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=10)
    handled = 0
    try:
        print("ready", file=out, flush=True)
        for method, _properties, body in channel.consume(queue):
            print(body.decode(errors="replace"), file=out, flush=True)
            channel.basic_ack(method.delivery_tag)
            handled += 1
            if count is not None and handled >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if connection.is_open:
            connection.close()  # what was delivered but not acknowledged goes back to the queue
    return handled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", help="the queue, {exchange}.{name} as registered with PUT")
    parser.add_argument("--url", default=AMQP_URL, help="the broker (default %(default)s)")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    consume(args.url, args.queue, args.count)


if __name__ == "__main__":
    sys.exit(main())
