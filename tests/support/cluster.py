"""A RabbitMQ cluster of private nodes on this machine, for the failover tests.

Each node is a ``PrivateBroker`` (own node name, AMQP and distribution
ports, data and log directories); all share one Erlang cookie, so they may
talk to each other, and every node after the first joins the first one:
``stop_app; reset; join_cluster FIRST; start_app``.

The nodes detect a peer that stopped answering within about
``NET_TICKTIME`` seconds (RabbitMQ's default is 60) and, since a frozen node
that wakes up finds itself cut off from the others, they handle the
partition with ``pause_minority``: the lone node pauses until it sees the
majority again, and the cluster heals without a test restarting anything.
"""

import concurrent.futures
import contextlib
import os
import secrets
import signal
import time

from .private_broker import BrokerStartError, PrivateBroker

NET_TICKTIME = 10
NODE_CONFIG = "cluster_partition_handling = pause_minority\n"
NODE_ADVANCED_CONFIG = f"[{{kernel, [{{net_ticktime, {NET_TICKTIME}}}]}}].\n"
FORMED_TIMEOUT = 120.0


class Cluster:
    """``size`` private nodes joined into one cluster; ``nodes[0]`` is the one the others joined."""

    def __init__(self, size=3, prefix="hutch-cluster"):
        cookie = secrets.token_hex(16).upper()
        self.nodes = [
            PrivateBroker(prefix, cookie=cookie, config=NODE_CONFIG, advanced_config=NODE_ADVANCED_CONFIG)
            for _ in range(size)
        ]

    @property
    def amqp_urls(self):
        return [node.amqp_url for node in self.nodes]

    def start(self):
        """Start every node (in parallel: each takes a while), then join them into one cluster."""
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            started = [pool.submit(node.start) for node in self.nodes]
            errors = [future.exception() for future in started]
        if any(errors):
            self.stop()
            raise next(error for error in errors if error)
        first = self.nodes[0]
        try:
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("reset")
                node.ctl("join_cluster", first.node)
                node.ctl("start_app")
            self.wait_until_formed()
        except Exception:
            self.stop()
            raise
        return self

    def running_nodes(self, via=None):
        """The node names ``via`` (default: the first running node) sees running, or an empty set."""
        for node in [via] if via else self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with contextlib.suppress(RuntimeError):
                output = node.ctl("eval", "rabbit_nodes:all_running().", timeout=15)
                return {name.strip(" '[]\n") for name in output.split(",") if name.strip(" '[]\n")}
        return set()

    def wait_until_formed(self, timeout=FORMED_TIMEOUT):
        """Wait until every node runs and sees all of them running."""
        expected = {node.node for node in self.nodes}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.running_nodes(node) == expected for node in self.nodes):
                return
            time.sleep(1)
        seen = {node.node: sorted(self.running_nodes(node)) for node in self.nodes}
        raise BrokerStartError(f"the cluster did not form within {timeout:g} s: {seen}")

    def node_of(self, connection_name_prefix):
        """The node holding the most client connections whose name starts with the prefix."""
        counts = dict.fromkeys(self.nodes, 0)
        by_name = {node.node: node for node in self.nodes}
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with contextlib.suppress(RuntimeError):
                output = node.ctl("list_connections", "name", "node", "--no-table-headers", "--quiet")
                for line in output.splitlines():
                    name, _, where = line.rpartition("\t")
                    if name.startswith(connection_name_prefix) and where.strip() in by_name:
                        counts[by_name[where.strip()]] += 1
                break
        node, count = max(counts.items(), key=lambda item: item[1])
        return node if count else None

    def restart(self, node):
        """Start a stopped or crashed node again on its data; it rejoins the cluster by itself."""
        node.start()
        self.wait_until_formed()

    @staticmethod
    def freeze(node):
        """SIGSTOP the node's Erlang VM: its sockets stay open, nothing answers."""
        os.kill(node.pid, signal.SIGSTOP)

    @staticmethod
    def thaw(node):
        os.kill(node.pid, signal.SIGCONT)

    def stop(self):
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
                self.thaw(node)  # a frozen node would not stop
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes))

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()

    def logs(self):
        return "\n".join(f"===== {node.node}\n{node.logs(6000)}" for node in self.nodes)
