"""The broker refuses one of a process's two connections: /health must say so.

A process serves requests on two broker connections: pika's (declarations,
subscriptions) and, with ``publisher = direct`` (the default), the direct
publisher's (broadcast, notify, RPC).  The private node cuts the direct
publisher's connection and, its user now at its connection limit, refuses it
again, as a node at its limit would.  Publishes then fail cleanly (503, Retry-After,
nothing stored), ``/health`` answers 503 so a balancer takes the process out
of rotation, the metrics count the refused attempts, and once the limit is
lifted the process serves again by itself.
"""

import re
import secrets
import time

import pytest
import requests

from harness.scrape import samples, value

from .amqp_tools import drain_message_ids
from .conftest import running_gateway

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

PUBLISHING = re.compile(r"hutch pid \d+ publisher")  # the direct publisher's connection_name
RECOVERY = 15.0  # the direct publisher retries with back-off up to reconnect_max_delay (faults.ini)


def metrics(url):
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


def connect_failures(url):
    return value(metrics(url), "hutch_broker_connect_failures_total", connection="direct")


@pytest.fixture
def limited_user(private_broker):
    """A user of the private node, and its amqp:// URL; the test limits its connections."""
    user, password = f"t.limited.{secrets.token_hex(4)}", secrets.token_hex(8)
    private_broker.ctl("add_user", user, password)
    try:
        private_broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield user, f"amqp://{user}:{password}@127.0.0.1:{private_broker.port}/%2F"
    finally:
        private_broker.ctl("delete_user", user)


def connections_of(broker, user):
    """(pid, connection name) of each connection ``user`` holds on ``broker``."""
    return [(c["pid"], c["name"]) for c in broker.connections("user", "pid") if c["user"] == user]


def test_a_refused_publishing_connection_takes_the_process_out_of_rotation(
    request, private_broker, limited_user, names
):
    user, amqp_url = limited_user
    exchange = names("refused", private_broker.amqp_url)
    with running_gateway(request, amqp_url, processes=1) as gateway:
        url = gateway.url
        assert requests.put(f"{url}/notify/{exchange}/queues/sink", timeout=15).status_code == 201
        before = requests.post(
            f"{url}/notify/{exchange}", data=b"stored", headers={"Idempotency-Key": "before"}, timeout=15
        )
        assert before.status_code == 202, before.text
        # every connection the gateway has stays; the direct publisher's, cut, may not come back
        held = connections_of(private_broker, user)
        publishing = [pid for pid, name in held if name and PUBLISHING.fullmatch(name)]
        assert len(publishing) == 1, held
        private_broker.ctl("set_user_limits", user, f'{{"max-connections": {len(held) - 1}}}')
        failures_before = connect_failures(url)
        private_broker.ctl("close_connection", publishing[0], "hutch fault test")

        refused = requests.post(f"{url}/notify/{exchange}", data=b"refused", timeout=15)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "broker_unavailable"
        assert refused.headers["Retry-After"]
        deadline = time.monotonic() + RECOVERY
        while connect_failures(url) == failures_before:  # the broker refused a reconnection
            assert time.monotonic() < deadline, "the direct publisher did not try to connect again"
            time.sleep(0.2)
        health = requests.get(f"{url}/health", timeout=15)
        assert (health.status_code, health.json()) == (503, {"broker": "unavailable"})
        assert health.headers["Retry-After"]
        during = metrics(url)
        assert value(during, "hutch_broker_connected", connection="pika") == 1
        assert value(during, "hutch_broker_connected", connection="direct") == 0

        private_broker.ctl("set_user_limits", user, '{"max-connections": -1}')
        deadline = time.monotonic() + RECOVERY
        while requests.get(f"{url}/health", timeout=15).status_code != 200:
            assert time.monotonic() < deadline, f"/health not 200 within {RECOVERY:g} s of lifting the limit"
            time.sleep(0.2)
        stored = requests.post(
            f"{url}/notify/{exchange}", data=b"stored", headers={"Idempotency-Key": "after"}, timeout=15
        )
        assert stored.status_code == 202, stored.text
        assert value(metrics(url), "hutch_broker_connected", connection="direct") == 1

    assert drain_message_ids(private_broker.amqp_url, f"{exchange}.sink") == ["before", "after"]
