"""What one run loads: the servers, the broker objects, and a Scenario per URL.

Every HTTP scenario POSTs the same small JSON body with wrk; the gateway's
carry bench/gateway.ini's API key, the management API's guest:guest.
Everything created on the broker is named ``bench.<run id>.*`` and deleted
by ``Run.close``.
"""

import dataclasses
import os
import pathlib
import shutil
import sys
import tempfile
import time

import requests

from . import broker, cpu, management, servers
from .load import BODY, CONTENT_TYPE, run_wrk

API_KEY = "bench-only-api-key-0123456789abcdef"  # bench/gateway.ini's key
BEARER = f"Bearer {API_KEY}"


def say(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Scenario:
    name: str
    label: str
    url: str
    authorization: str = BEARER
    body: str = BODY
    expect_status: int = 202
    expect_json: dict = dataclasses.field(default_factory=dict)
    purge: tuple = ()  # queues that fill up under load: purged after each measurement
    cpu_groups: dict = dataclasses.field(default_factory=dict)  # name -> function returning pids

    def check(self):
        """One request by hand: the scenario does what it claims before wrk hammers it."""
        answer = requests.post(
            self.url,
            data=self.body,
            headers={"Authorization": self.authorization, "Content-Type": CONTENT_TYPE},
            timeout=10,
        )
        if answer.status_code != self.expect_status:
            raise RuntimeError(f"{self.name}: {answer.status_code} {answer.text[:300]}")
        if self.expect_json:
            data = answer.json()
            if any(data.get(key) != value for key, value in self.expect_json.items()):
                raise RuntimeError(f"{self.name}: expected {self.expect_json}, got {data}")

    def load(self, connections, seconds):
        """wrk's figures, with the CPU ms per request of each process group in ``cpu_ms`` and the
        daemons' context switches per request in ``daemon_switches``."""
        meter = cpu.Meter(self.cpu_groups)
        before, switches_before = meter.snapshot(), meter.daemon_switches()
        load = run_wrk(self.url, connections, seconds, self.authorization, self.body)
        load.cpu_ms = meter.per_request_ms(before, meter.snapshot(), load.requests)
        switches_after = meter.daemon_switches()
        load.daemon_switches = meter.switches_per_request(switches_before, switches_after, load.requests)
        return load


def private_directory(prefix):
    directory = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(directory, 0o755)  # the daemons (www-data) read the ini in it
    return directory


class Run:
    """The servers, responders and broker objects of one run; ``close`` removes them all."""

    def __init__(self, gateway_root, compare_root=None, responders=2):
        self.id = broker.run_id()
        self.prefix = f"bench.{self.id}"
        self.responder_count = responders
        self.directories = [private_directory(f"hutch-bench-{self.id}-")]
        ini = servers.write_gateway_ini(self.directories[0], gateway_root)
        self.hello = servers.hello_server(ini, gateway_root)
        self.hutch = servers.gateway_server(ini, gateway_root)
        self.naive = servers.naive_server(ini, gateway_root)
        self.threadlocal = servers.threadlocal_server(ini, gateway_root)
        self.parts = {part: servers.parts_server(part, ini, gateway_root) for part in ("stack", "handoff")}
        self.servers = [self.hello, self.hutch, self.naive, self.threadlocal, *self.parts.values()]
        self.hutch_b = None
        if compare_root:
            self.directories.append(private_directory(f"hutch-bench-{self.id}-b-"))
            ini_b = servers.write_gateway_ini(self.directories[1], compare_root)
            self.hutch_b = servers.gateway_server(ini_b, compare_root)
            self.servers.append(self.hutch_b)
        self.housekeeper = None
        self.responders = None

    def start(self):
        self.housekeeper = broker.Housekeeper()
        for server in self.servers:
            say(f"starting {server.name} on port {server.port} ({server.script})")
            server.start()
        self.responders = broker.Responders(f"{self.prefix}.rpc", "echo", self.responder_count)
        self.housekeeper.remember(exchanges=[f"{self.prefix}.rpc"])

    def scenarios(self):
        """Every scenario by name; with a compare tree, each ``*_b`` right after its twin."""
        p = self.prefix
        management_queue = f"{p}.management"
        self.housekeeper.queue(management_queue)
        self.housekeeper.remember(exchanges=[f"{p}.naive", f"{p}.threadlocal"])
        scenarios = {
            "hello": Scenario(
                "hello", "hello-world WSGI", f"{self.hello.url}/broadcast/{p}.hello", expect_status=200
            ),
            **self.hutch_scenarios(self.hutch, ""),
            "management": Scenario(
                "management",
                "RabbitMQ management API publish",
                management.PUBLISH_URL,
                authorization=management.AUTHORIZATION,
                body=management.publish_body(management_queue, BODY),
                expect_status=200,
                expect_json={"routed": True},
                purge=(management_queue,),
            ),
            "broadcast_stack": Scenario(
                "broadcast_stack",
                "part: Hutch broadcast, stack only (no AMQP)",
                f"{self.parts['stack'].url}/broadcast/{p}.parts",
                expect_json={"routed": False},
            ),
            "broadcast_handoff": Scenario(
                "broadcast_handoff",
                "part: + hand-off to the I/O thread (no AMQP)",
                f"{self.parts['handoff'].url}/broadcast/{p}.parts",
                expect_json={"routed": False},
            ),
            "naive": Scenario(
                "naive", "naive WSGI (pika connection per request)", f"{self.naive.url}/broadcast/{p}.naive"
            ),
            "threadlocal": Scenario(
                "threadlocal",
                "ref: pika connection per thread, no I/O thread",
                f"{self.threadlocal.url}/broadcast/{p}.threadlocal",
                expect_json={"routed": False},
            ),
        }
        if self.hutch_b is not None:  # paired: each B scenario measured right after its A twin
            compared = self.hutch_scenarios(self.hutch_b, "_b")
            scenarios = {
                key: value
                for name, scenario in scenarios.items()
                for key, value in ((name, scenario), (f"{name}_b", compared.get(f"{name}_b")))
                if value is not None
            }
        self.attach_cpu_groups(scenarios)
        return scenarios

    def hutch_scenarios(self, server, suffix):
        """broadcast (no queue, one queue), notify and rpc against one gateway server."""
        p, gateway, tag = f"{self.prefix}{suffix}", server.url, " [B]" if suffix else ""
        queue_exchange, queue = f"{p}.bcastq", f"{p}.bcastq.q"
        self.housekeeper.fanout_with_queue(queue_exchange, queue, durable=False)
        notify_exchange, notify_queue = f"{p}.notify", f"{p}.notify.bench"
        self.housekeeper.remember([notify_exchange, f"{p}.bcast"], [notify_queue])
        answer = requests.put(
            f"{gateway}/notify/{notify_exchange}/queues/bench", headers={"Authorization": BEARER}, timeout=10
        )
        if answer.status_code != 201:
            raise RuntimeError(f"registering the notify consumer queue: {answer.status_code} {answer.text}")
        scenarios = [
            Scenario(
                "broadcast",
                "Hutch broadcast (no queue)",
                f"{gateway}/broadcast/{p}.bcast",
                expect_json={"routed": False},
            ),
            Scenario(
                "broadcast_queue",
                "Hutch broadcast (1 bound queue)",
                f"{gateway}/broadcast/{queue_exchange}",
                expect_json={"routed": True},
                purge=(queue,),
            ),
            Scenario(
                "notify",
                "Hutch notify (1 consumer queue, confirmed)",
                f"{gateway}/notify/{notify_exchange}",
                purge=(notify_queue,),
            ),
            Scenario(
                "rpc",
                "Hutch RPC (echo responders)",
                f"{gateway}/rpc/{self.prefix}.rpc/echo",
                expect_status=200,
            ),
        ]
        for scenario in scenarios:
            scenario.name += suffix
            scenario.label += tag
        return {scenario.name: scenario for scenario in scenarios}

    def attach_cpu_groups(self, scenarios):
        servers_by_name = {
            "hello": self.hello,
            "naive": self.naive,
            "threadlocal": self.threadlocal,
            "broadcast_stack": self.parts["stack"],
            "broadcast_handoff": self.parts["handoff"],
        }
        for name, scenario in scenarios.items():
            server = servers_by_name.get(name, self.hutch_b if name.endswith("_b") else self.hutch)
            scenario.cpu_groups = {"rabbitmq": cpu.broker_pids}
            if name != "management":
                scenario.cpu_groups.update(daemons=server.daemon_pids, apache=server.apache_pids)
            if name.startswith("rpc"):
                scenario.cpu_groups["responders"] = lambda: [p.pid for p in self.responders.processes]

    def close(self):
        if self.responders is not None:
            self.responders.stop()
        for server in self.servers:
            server.stop()
            server.cleanup()
        if self.housekeeper is not None:
            self.housekeeper.close()
        for directory in self.directories:
            shutil.rmtree(directory, ignore_errors=True)
