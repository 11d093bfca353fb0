"""A throw-away RabbitMQ node for tests that stop, block or cut the broker.

The shared node (rabbit@localhost, port 5672) carries other people's tests,
so fault tests never touch it: they get a node of their own, with its own
name, AMQP and distribution ports, data and log directories, Erlang cookie
and no plugins (so it opens no management or prometheus listener), started
from the Debian scripts in ``/usr/lib/rabbitmq/bin`` (the ``/usr/sbin``
wrappers would ``su rabbitmq`` and lose this environment).  Every
``rabbitmqctl`` call goes through ``ctl``, which names this node.
"""

import contextlib
import os
import pathlib
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

RABBITMQ_BIN = pathlib.Path(os.environ.get("HUTCH_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT = 60.0
CTL_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')  # in rabbitmqctl's client_properties


def ephemeral_ports():
    """The kernel's range for the source ports of outgoing connections."""
    try:
        low, high = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count):
    """``count`` distinct ports that were free a moment ago on 127.0.0.1.

    Picked below the kernel's ephemeral range: a node restarted on its ports
    (after a crash) must not find one taken meanwhile as the source port of
    some outgoing connection, which on a busy machine happens.
    """
    low = ephemeral_ports()[0]
    candidates = random.sample(range(10000, low), min(200, low - 10000)) if low > 10200 else []
    sockets = []
    try:
        for port in [*candidates, *[0] * count]:  # port 0: the kernel's pick, if all else fails
            if len(sockets) == count:
                break
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class BrokerStartError(RuntimeError):
    """The private node did not come up; the message carries its logs."""


class PrivateBroker:
    """One RabbitMQ node in a temporary directory, listening on 127.0.0.1 only."""

    def __init__(self, prefix="hutch-faults", cookie=None, config="", advanced_config="[].\n"):
        """``cookie``: the Erlang cookie (nodes of one cluster share one; default: a new one).
        ``config`` and ``advanced_config``: the node's rabbitmq.conf and advanced.config."""
        self.node = f"{prefix}-{uuid.uuid4().hex[:8]}@localhost"
        self.cookie = cookie or secrets.token_hex(16).upper()
        self.config = config
        self.advanced_config = advanced_config
        self.port, self.dist_port = free_ports(2)
        self.root = pathlib.Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.home = self.root / "home"
        self.process = None
        self._console = None

    @property
    def amqp_url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    # -- environment ---------------------------------------------------------

    def _prepare(self):
        if self.home.exists():  # started before: keep the node's data, as a restart does
            return
        for name in ("home", "mnesia", "log"):
            (self.root / name).mkdir(mode=0o700)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(self.config)
        (self.root / "advanced.config").write_text(self.advanced_config)
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf

    def _cli_env(self):
        """What both the server and rabbitmqctl need: the same HOME, hence the same cookie."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("RABBITMQ_")}
        env.pop("ERL_FLAGS", None)
        env.update(
            HOME=str(self.home),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
        )
        return env

    def _server_env(self):
        env = self._cli_env()
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.root / "node.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.root / "advanced.config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_CRASH_DUMP=str(self.root / "log" / "erl_crash.dump"),
        )
        return env

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        """Start the node detached from this process group; wait until it serves AMQP."""
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise BrokerStartError(f"{server} not found: install rabbitmq-server or set HUTCH_RABBITMQ_BIN")
        self._prepare()
        self._console = open(self.root / "log" / "console.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(server)],
            env=self._server_env(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self._fail(f"rabbitmq-server exited with status {self.process.returncode}")
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                self._fail(f"the node was not up within {timeout:g} s")
            # await_startup fails at once while the node is not yet registered with epmd
            wait = max(1, min(10, int(left)))
            result = self._run("await_startup", "--timeout", str(wait), timeout=wait + 15)
            if result is not None and result.returncode == 0 and self._accepts_connections():
                return self
            time.sleep(0.5)

    def _accepts_connections(self):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=2):
            return True
        return False

    def _fail(self, why):
        raise BrokerStartError(f"private RabbitMQ node {self.node}: {why}\n{self.logs()}")

    def stop(self):
        """Stop the node (bounded), then kill whatever is left of its process group."""
        if self.process is not None and self.process.poll() is None:
            self._run("stop", timeout=STOP_TIMEOUT)
            self._wait_or_kill()
        if self._console is not None:
            self._console.close()
            self._console = None

    @property
    def pid(self):
        """The node's Erlang VM (the node writes it at start)."""
        return int((self.root / "node.pid").read_text().strip())

    def crash(self):
        """Kill the node's Erlang VM with SIGKILL: nothing it holds in memory reaches the disk."""
        os.kill(self.pid, signal.SIGKILL)
        self._wait_or_kill()
        self._console.close()
        self._console = None

    def _wait_or_kill(self):
        """Wait (bounded) for the node's process to end; kill its process group if it does not."""
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()

    # -- rabbitmqctl ---------------------------------------------------------

    def _run(self, *args, timeout=CTL_TIMEOUT):
        command = [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args]
        try:
            return subprocess.run(
                command, env=self._cli_env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None

    def ctl(self, *args, timeout=CTL_TIMEOUT):
        """Run ``rabbitmqctl -n <this node> *args``; raise unless it succeeds in time."""
        result = self._run(*args, timeout=timeout)
        if result is None:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} took longer than {timeout:g} s")
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def connections(self, *items):
        """The client connections this node lists (in a cluster, every node's): for each, ``name``
        (its connection_name, None when unnamed) and the ``list_connections`` ``items`` asked for."""
        output = self.ctl("list_connections", "client_properties", *items, "--no-table-headers", "-q")
        found = []
        for line in output.splitlines():
            properties, *values = line.rsplit("\t", len(items))
            name = CONNECTION_NAME.search(properties)
            found.append({"name": name and name.group(1), **dict(zip(items, values, strict=True))})
        return found

    @contextlib.contextmanager
    def app_stopped(self):
        """The RabbitMQ application stopped (the node stays up); started again on exit, whatever happens."""
        self.ctl("stop_app")
        try:
            yield
        finally:
            self.ctl("start_app")

    @contextlib.contextmanager
    def memory_alarm(self, watermark="0.0001", normal="0.4"):
        """A memory alarm (RabbitMQ blocks publishers) until exit; ``normal`` is RabbitMQ's default."""
        self.ctl("set_vm_memory_high_watermark", watermark)
        try:
            yield
        finally:
            self.ctl("set_vm_memory_high_watermark", normal)

    def logs(self, limit=20000):
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-limit:])
        return "\n".join(parts)


def started_private_broker(prefix="hutch-faults", attempts=2):
    """A started ``PrivateBroker``; another node if one lost its port before it bound it."""
    for attempt in range(1, attempts + 1):
        broker = PrivateBroker(prefix=prefix)
        try:
            return broker.start()
        except BrokerStartError:
            broker.cleanup()
            if attempt == attempts:
                raise
