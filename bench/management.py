"""RabbitMQ's management API publish endpoint, the HTTP baseline Hutch must beat.

``POST /api/exchanges/%2F/amq.default/publish`` is documented by RabbitMQ as
a highly inefficient way to publish; it is what people reach for first.
"""

import base64
import json
import subprocess
import time

import requests

BASE = "http://127.0.0.1:15672"
AUTHORIZATION = "Basic " + base64.b64encode(b"guest:guest").decode()
PUBLISH_URL = BASE + "/api/exchanges/%2F/amq.default/publish"


def enable(timeout=90):
    """Enable the plugin (idempotent) and wait until its API answers."""
    subprocess.run(
        ["rabbitmq-plugins", "enable", "rabbitmq_management"], capture_output=True, check=True, timeout=120
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = requests.get(BASE + "/api/overview", headers={"Authorization": AUTHORIZATION}, timeout=5)
            if answer.status_code == 200:
                return answer.json().get("rabbitmq_version")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("the management API did not answer on 127.0.0.1:15672")


def publish_body(queue, payload):
    """The JSON the endpoint wants: publish ``payload`` to ``queue`` through the default exchange."""
    return json.dumps(
        {"properties": {}, "routing_key": queue, "payload": payload, "payload_encoding": "string"}
    )


def check_routed(queue, payload):
    answer = requests.post(
        PUBLISH_URL,
        data=publish_body(queue, payload),
        headers={"Authorization": AUTHORIZATION, "Content-Type": "application/json"},
        timeout=10,
    )
    answer.raise_for_status()
    if answer.json() != {"routed": True}:
        raise RuntimeError(f"the management API did not route to {queue}: {answer.text}")
