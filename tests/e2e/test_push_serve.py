"""``hutch serve`` starts the push delivery processes beside Apache: a subscription made over real
HTTP is delivered to a real receiver, the tier's counts reach ``GET /metrics``, and stopping the
server stops the delivery processes too."""

import pathlib

import pytest
import requests

from harness.push import Receiver, wait_for
from harness.redis_node import PrivateRedis
from harness.server import children_of, gateway_ini, running_gateway

HERE = pathlib.Path(__file__).resolve().parent
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
KEY = {"Authorization": "Bearer e2e-full-access-key-0123456789"}  # test.ini
LIMITED = {"Authorization": "Bearer e2e-limited-key-0123456789"}  # broadcast:t.* only

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


def delivery_children(pid):
    found = []
    for child, _daemon in children_of(pid):
        try:
            command = pathlib.Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"hutch.delivery.main" in command:
            found.append(child)
    return found


def test_serve_delivers_pushed_notifications(request, unique_name):
    with PrivateRedis(persistent=False) as redis_node:
        settings = {"push_store": redis_node.url, "push_allow": "http://127.0.0.1: https://"}
        ini = gateway_ini(HERE / "test.ini", AMQP, settings)
        receiver = Receiver().start()
        exchange = unique_name("pushserve")
        try:
            with running_gateway(
                request, ini, processes=1, threads=4, extra_args=["--delivery-processes", "2"]
            ) as server:
                delivery = delivery_children(server.process.pid)
                assert len(delivery) == 2
                base = f"{server.url}/notify/{exchange}/queues/c/push"
                refused = requests.put(base, json={"url": receiver.url}, headers=LIMITED, timeout=10)
                assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
                created = requests.put(base, json={"url": receiver.url}, headers=KEY, timeout=10)
                assert created.status_code == 201, created.text
                sent = requests.post(
                    f"{server.url}/notify/{exchange}", data=b"hello", headers=KEY, timeout=10
                )
                assert sent.status_code == 202
                wait_for(lambda: receiver.ok(), what="the delivery")
                assert receiver.ok()[0].body == b"hello"
                assert receiver.unverified([created.json()["secret"]]) == []
                metrics = requests.get(f"{server.url}/metrics", headers=KEY, timeout=10).text
                assert f'hutch_push_delivered_total{{subscription="push/{exchange}/c"}} 1.0' in metrics
                requests.delete(base, headers=KEY, timeout=10)
            assert [pid for pid in delivery if pathlib.Path(f"/proc/{pid}").exists()] == []
        finally:
            receiver.stop()
