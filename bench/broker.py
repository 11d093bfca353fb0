"""The broker side of a run: housekeeping, the echo responders, and the management API baseline.

Every name starts with ``bench.<run id>.`` and everything the run creates is
deleted at the end, also when it fails (the shared broker serves other
people's tests).  RabbitMQ's management API publish
(``POST /api/exchanges/%2F/amq.default/publish``, "a highly inefficient way
to publish" by RabbitMQ's own docs) is what people reach for first: the HTTP
baseline Hutch must beat.
"""

import base64
import contextlib
import json
import pathlib
import select
import subprocess
import sys
import time
import uuid

import pika
import requests

from harness import amqp
from harness.process import terminate

AMQP_URL = amqp.AMQP_URL
MANAGEMENT = "http://127.0.0.1:15672"
MANAGEMENT_AUTHORIZATION = "Basic " + base64.b64encode(b"guest:guest").decode()
MANAGEMENT_PUBLISH_URL = MANAGEMENT + "/api/exchanges/%2F/amq.default/publish"
RESPONDER = pathlib.Path(__file__).resolve().parents[1] / "examples" / "rpc_responder.py"


def run_id():
    return uuid.uuid4().hex[:8]


def enable_management(timeout=90):
    """Enable the management plugin (idempotent), wait until its API answers; RabbitMQ's version."""
    command = ["rabbitmq-plugins", "enable", "rabbitmq_management"]
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            answer = requests.get(
                MANAGEMENT + "/api/overview", headers={"Authorization": MANAGEMENT_AUTHORIZATION}, timeout=5
            )
            if answer.status_code == 200:
                return answer.json().get("rabbitmq_version")
        time.sleep(0.5)
    raise RuntimeError("the management API did not answer on 127.0.0.1:15672")


def management_body(queue, payload):
    """The JSON the publish endpoint wants: ``payload`` to ``queue`` through the default exchange."""
    return json.dumps(
        {"properties": {}, "routing_key": queue, "payload": payload, "payload_encoding": "string"}
    )


class Housekeeper:
    """One admin connection (no heartbeats: it idles while wrk runs) and what it must delete."""

    def __init__(self, url=AMQP_URL):
        parameters = pika.URLParameters(url)
        parameters.heartbeat = 0
        self.connection = pika.BlockingConnection(parameters)
        self.channel = self.connection.channel()
        self.exchanges = []
        self.queues = []

    def remember(self, exchanges=(), queues=()):
        self.exchanges.extend(exchanges)
        self.queues.extend(queues)

    def fanout_with_queue(self, exchange, queue, durable, quorum=False):
        """A fanout exchange declared as Hutch would, with one bound (classic or quorum) queue."""
        self.channel.exchange_declare(exchange, "fanout", durable=durable, auto_delete=not durable)
        arguments = {"x-queue-type": "quorum"} if quorum else None
        self.channel.queue_declare(queue, durable=durable or quorum, auto_delete=False, arguments=arguments)
        self.channel.queue_bind(queue, exchange)
        self.remember([exchange], [queue])

    def queue(self, queue):
        self.channel.queue_declare(queue, durable=False, auto_delete=False)
        self.remember(queues=[queue])

    def depth(self, queue):
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def purge(self, queue):
        self.channel.queue_purge(queue)

    def close(self):
        """Delete what the run created (an exchange's history stream with it), close the connection."""
        with contextlib.suppress(pika.exceptions.AMQPError):
            amqp.delete(self.exchanges, self.queues)
            self.connection.close()


class Responders:
    """``count`` echo responder processes (examples/rpc_responder.py --answer echo) sharing one queue."""

    def __init__(self, exchange, routing_key, count=2, url=AMQP_URL):
        self.exchange = exchange
        self.routing_key = routing_key
        self.processes = []
        for _ in range(count):
            command = [sys.executable, str(RESPONDER), "--answer", "echo", "--url", url]
            command += ["--exchange", exchange, "--routing-key", routing_key]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            self.processes.append(process)
            ready, _, _ = select.select([process.stdout], [], [], 30)
            line = process.stdout.readline().strip() if ready else "(nothing within 30 s)"
            if line != "ready":
                self.stop()
                raise RuntimeError(f"the RPC responder did not start (said {line!r})")

    def stop(self):
        for process in self.processes:
            terminate(process)
        self.processes = []
