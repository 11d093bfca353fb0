"""The three AMQP idioms Hutch grew from (Broadcast, Notify, Request/Response), as their original
programs wrote them for amqplib, ported to py-amqp (``pip install amqp``), amqplib's successor.

The calls are the original ones; py-amqp needs ``conn.connect()`` after ``amqp.Connection(...)``
and ``conn.drain_events()`` where amqplib had ``chan.wait()``.  One change is Hutch's: a notify
queue registered through the gateway (``PUT /notify/{exchange}/queues/{consumer}``) is a quorum
queue by default (the ``notify_queue_type`` setting), and RabbitMQ refuses a declaration of an
existing queue with other arguments (406 PRECONDITION_FAILED, ``inequivalent arg
'x-queue-type'``).  So a consumer declares it with the same type::

    chan.queue_declare("notify.patient.add.scheduling", durable=True, auto_delete=False,
                       exclusive=False, arguments={"x-queue-type": "quorum"})

(``--queue-type classic`` for a gateway with ``notify_queue_type = classic``), or declares it
passively (``passive=True``: "it must exist"), which works whatever its type.

Each program prints ``ready`` once it consumes, then one line per message::

    python examples/seed/idioms.py broadcast-consume score_updates
    python examples/seed/idioms.py broadcast-produce score_updates "AL 24: FL 7"
    python examples/seed/idioms.py notify-consume notify.patient.add scheduling
    python examples/seed/idioms.py notify-produce notify.patient.add "given:John"
    python examples/seed/idioms.py respond api add_patient
    python examples/seed/idioms.py call api add_patient "Test message!"
"""

import argparse
import signal
import sys
import urllib.parse

import amqp

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def connect(url):
    """The original set-up: a connection and one channel."""
    parts = urllib.parse.urlsplit(url)
    conn = amqp.Connection(
        host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        userid=urllib.parse.unquote(parts.username or "guest"),
        password=urllib.parse.unquote(parts.password or "guest"),
        virtual_host=urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
    )
    conn.connect()  # py-amqp: amqplib connected in the constructor
    return conn, conn.channel()


def run(conn, count, handled):
    """amqplib's ``chan.wait()`` loop: until ``count`` messages were handled (None: until stopped)."""
    print("ready", flush=True)
    while count is None or handled[0] < count:
        conn.drain_events()


# --- Broadcast -----------------------------------------------------------------------------------


def broadcast_produce(chan, exchange, text):
    chan.exchange_declare(exchange=exchange, type="fanout", durable=False, auto_delete=True)
    msg = amqp.Message(text)
    chan.basic_publish(msg, exchange=exchange)


def broadcast_consume(conn, chan, exchange, count=None):
    chan.exchange_declare(exchange=exchange, type="fanout", durable=False, auto_delete=True)
    queue = chan.queue_declare("", durable=False, exclusive=True, auto_delete=True)
    chan.queue_bind(queue=queue[0], exchange=exchange)
    handled = [0]

    def score_update_callback(msg):
        print(msg.body if isinstance(msg.body, str) else msg.body.decode(errors="replace"), flush=True)
        handled[0] += 1

    chan.basic_consume(queue=queue[0], callback=score_update_callback, no_ack=True)
    run(conn, count, handled)


# --- Notify --------------------------------------------------------------------------------------


def notify_produce(chan, exchange, text):
    chan.exchange_declare(exchange=exchange, type="fanout", durable=True, auto_delete=False)
    msg = amqp.Message(text, delivery_mode=2)
    chan.basic_publish(msg, exchange=exchange)


def notify_consume(conn, chan, exchange, consumer, queue_type="quorum", count=None):
    """The seed's consumer system, declaring its queue as the gateway registers it."""
    chan.exchange_declare(exchange=exchange, type="fanout", durable=True, auto_delete=False)
    queue = f"{exchange}.{consumer}"
    arguments = {"x-queue-type": queue_type} if queue_type else None
    chan.queue_declare(queue, durable=True, auto_delete=False, exclusive=False, arguments=arguments)
    chan.queue_bind(queue=queue, exchange=exchange)
    handled = [0]

    def patient_add(msg):
        print(msg.body if isinstance(msg.body, str) else msg.body.decode(errors="replace"), flush=True)
        chan.basic_ack(msg.delivery_tag)
        handled[0] += 1

    chan.basic_consume(queue=queue, callback=patient_add)
    run(conn, count, handled)


# --- Request/Response ----------------------------------------------------------------------------


def respond(conn, chan, exchange, routing_key, count=None):
    """The seed's responder: replies to ``reply_to`` without copying ``correlation_id``."""
    chan.exchange_declare(exchange=exchange, type="direct", durable=False, auto_delete=True)
    chan.queue_declare(queue=routing_key, durable=False, exclusive=False, auto_delete=True)
    chan.queue_bind(exchange=exchange, queue=routing_key, routing_key=routing_key)
    handled = [0]

    def add_patient(msg):
        reply = amqp.Message("Return Value")
        chan.basic_publish(reply, routing_key=msg.reply_to)
        handled[0] += 1

    chan.basic_consume(queue=routing_key, callback=add_patient, no_ack=True)
    run(conn, count, handled)


def call(conn, chan, exchange, routing_key, text):
    """The seed's requester: a temporary exclusive reply queue, then wait for one reply."""
    reply_queue = chan.queue_declare("", durable=False, exclusive=True, auto_delete=True)
    reply_queue = reply_queue[0]
    msg = amqp.Message(text)
    msg.properties["reply_to"] = reply_queue
    chan.basic_publish(msg, exchange=exchange, routing_key=routing_key)
    replies = []

    def handle_response(msg):
        replies.append(msg.body)
        print("Response:", msg.body, flush=True)

    chan.basic_consume(queue=reply_queue, callback=handle_response, no_ack=True)
    print("ready", flush=True)
    while not replies:
        conn.drain_events()  # amqplib: chan.wait()
    return replies[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", choices=PROGRAMS)
    parser.add_argument("arguments", nargs="*", help="exchange, then consumer / routing key / text")
    parser.add_argument("--url", default=AMQP_URL, help="the broker (default %(default)s)")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    parser.add_argument(
        "--queue-type",
        default="quorum",
        help="notify-consume: the x-queue-type the gateway registered (quorum, classic; '' for none)",
    )
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conn, chan = connect(options.url)
    try:
        program = options.program
        if program.endswith("consume") or program == "respond":
            extra = {"queue_type": options.queue_type} if program == "notify-consume" else {}
            PROGRAMS[program](conn, chan, *options.arguments, count=options.count, **extra)
        elif program == "call":
            call(conn, chan, *options.arguments)
        else:
            PROGRAMS[program](chan, *options.arguments)
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()
    return 0


PROGRAMS = {
    "broadcast-produce": broadcast_produce,
    "broadcast-consume": broadcast_consume,
    "notify-produce": notify_produce,
    "notify-consume": notify_consume,
    "respond": respond,
    "call": call,
}

if __name__ == "__main__":
    sys.exit(main())
