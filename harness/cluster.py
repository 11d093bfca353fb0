"""A RabbitMQ cluster of private nodes on this machine, for the failover tests.

Each node is a ``PrivateBroker`` (own node name, AMQP and distribution
ports, data and log directories); all share one Erlang cookie, so they may
talk to each other, and every node after the first joins the first one:
``stop_app; reset; join_cluster FIRST; start_app``.

The nodes declare a peer that stopped answering down after about
``NET_TICKTIME`` seconds (RabbitMQ's default is 60), and since a frozen node
that wakes up finds itself cut off from the others (a partition), they
``autoheal``: the side with the most nodes wins and the lone node restarts
and rejoins it, so the cluster heals without a test restarting anything.
"""

import concurrent.futures
import contextlib
import os
import secrets
import signal
import time

from .private_broker import BrokerStartError, PrivateBroker

NET_TICKTIME = 10
NODE_CONFIG = "cluster_partition_handling = autoheal\n"
NODE_ADVANCED_CONFIG = f"[{{kernel, [{{net_ticktime, {NET_TICKTIME}}}]}}].\n"
FORMED_TIMEOUT = 120.0


class Cluster:
    """``size`` private nodes joined into one cluster; ``nodes[0]`` is the one the others joined."""

    def __init__(self, size=3, prefix="hutch-cluster"):
        self.prefix = prefix
        self.cookie = secrets.token_hex(16).upper()
        self.nodes = [self._new_node() for _ in range(size)]
        self.frozen_nodes = set()  # nodes stopped with SIGSTOP: rabbitmqctl would wait for them in vain

    def _new_node(self):
        return PrivateBroker(
            self.prefix, cookie=self.cookie, config=NODE_CONFIG, advanced_config=NODE_ADVANCED_CONFIG
        )

    def _start_node(self, index, attempts=3):
        """Start node ``index``; a port taken meanwhile (it was free when picked) gets a new node."""
        for attempt in range(1, attempts + 1):
            try:
                return self.nodes[index].start()
            except BrokerStartError:
                if attempt == attempts:
                    raise
                self.nodes[index].cleanup()
                self.nodes[index] = self._new_node()
        return None

    @property
    def amqp_urls(self):
        return [node.amqp_url for node in self.nodes]

    def start(self):
        """Start every node (in parallel: each takes a while), then join them into one cluster."""
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            started = [pool.submit(self._start_node, index) for index in range(len(self.nodes))]
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

    def answering(self, node):
        """The node's VM runs and is not frozen."""
        return node.process is not None and node.process.poll() is None and node not in self.frozen_nodes

    def running_nodes(self, via=None):
        """The node names ``via`` (default: the first answering node) sees running, or an empty set."""
        for node in [via] if via else self.nodes:
            if not self.answering(node):
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
        """The node holding the most client connections whose name starts with the prefix.

        Any node lists the whole cluster's connections; the server port tells the node.
        """
        counts = dict.fromkeys(self.nodes, 0)
        by_port = {str(node.port): node for node in self.nodes}
        for node in self.nodes:
            if not self.answering(node):
                continue
            with contextlib.suppress(RuntimeError):
                for connection in node.connections("port"):
                    name = connection["name"] or ""
                    if name.startswith(connection_name_prefix) and connection["port"] in by_port:
                        counts[by_port[connection["port"]]] += 1
                break
        node, count = max(counts.items(), key=lambda item: item[1])
        return node if count else None

    def restart(self, node):
        """Start a stopped or crashed node again on its data; it rejoins the cluster by itself."""
        node.start()
        self.wait_until_formed()

    def freeze(self, node):
        """SIGSTOP the node's Erlang VM: its sockets stay open, nothing answers."""
        os.kill(node.pid, signal.SIGSTOP)
        self.frozen_nodes.add(node)

    def thaw(self, node):
        os.kill(node.pid, signal.SIGCONT)
        self.frozen_nodes.discard(node)

    @contextlib.contextmanager
    def frozen(self, node):
        """The node frozen until exit, whatever happens."""
        self.freeze(node)
        try:
            yield node
        finally:
            self.thaw(node)

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
