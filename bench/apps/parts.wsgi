"""Hutch's broadcast with its AMQP work taken out: splits a broadcast's cost in parts.

Not a gateway and never deployed: the benchmark serves it beside the real one
to show where the CPU of a broadcast goes.  It builds the real application
from $HUTCH_INI and replaces only ``Broker.broadcast`` of its broker:

- ``HUTCH_BENCH_PART=stack``: answers ``routed: false`` at once in the request
  thread.  What is left is Hutch's WSGI stack (Paste, Beaker, dispatch, auth,
  the message built from the request, the JSON answer).
- ``HUTCH_BENCH_PART=handoff``: hands the work to the I/O thread, which
  answers without any AMQP.  Adds the hand-off between threads and back.

The real broadcast minus ``handoff`` is pika's publish, confirm and return
handling plus the broker's share.
"""

import os

from paste.deploy import loadapp

application = loadapp(f"config:{os.environ['HUTCH_INI']}")
broker = application.gateway.broker
PART = os.environ["HUTCH_BENCH_PART"]


def answer_at_once(exchange, message):
    return False


def answer_from_io_thread(exchange, message):
    return broker._submit(lambda state, resolve: resolve(False, None), broker.publish_timeout)


broker.broadcast = {"stack": answer_at_once, "handoff": answer_from_io_thread}[PART]
