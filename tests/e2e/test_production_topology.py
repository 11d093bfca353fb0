"""The one-host production topology, started from the shipped files as apache/README.md says.

Three things serve the public port, each from its file under apache/:

- Debian's system Apache with ``hutch.conf``, ``hutch-mpm.conf`` and ``hutch-behind-front.conf``
  (steps 2-5 and 8), on a private instance as tests/e2e/test_apache_system.py runs it: its own
  ``APACHE_CONFDIR``, folders, socket folder and loopback port;
- two event servers and one push delivery process, each started from its systemd unit
  (``hutch-events@.service``, ``hutch-delivery@.service``).  systemd does not run in this
  container, so the test reads the unit's ``[Service]`` section and does what systemd would:
  a clean environment with ``Environment=`` and then ``EnvironmentFile=`` applied, ``User=`` and
  ``Group=``, ``WorkingDirectory=``, the ``ExecStart=`` command line word for word, and
  ``KillSignal=`` to stop.  (Its sandboxing, ``ProtectSystem``/``PrivateTmp``, is not applied.);
- HAProxy from ``haproxy.cfg`` (step 8), in the foreground.

What differs from a real host, and only that: ``/srv/hutch`` is this checkout, ``/etc/hutch/``,
``/run/hutch-metrics`` and Apache's folders are the instance's, the ports (80, 8080, 8081) are free
loopback ones, the ini lives in the instance (``HUTCH_INI`` in Apache's envvars and in the units'
``/etc/hutch/hutch.env``, as the README's remote-broker section does), and its push settings are
the sysadmin's (``push_store`` a private Redis, ``push_allow`` the loopback receiver).  Then
broadcast, notify, RPC, push delivery, an event stream, ``/health`` and ``/metrics`` go through the
front.
"""

import contextlib
import os
import pathlib
import pwd
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

import pytest
import requests

from harness import amqp
from harness.push import Receiver, wait_for
from harness.redis_node import PrivateRedis
from harness.server import free_port
from tests.e2e.test_apache_system import sh, write_instance_files

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ROOT = pathlib.Path(__file__).resolve().parents[2]
APACHE = ROOT / "apache"
VENV_BIN = pathlib.Path(sys.executable).parent
README = (APACHE / "README.md").read_text()
INSTALLED = "/srv/hutch"
SHIPPED_MAXCONN = 20000  # haproxy.cfg
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The README's commands this test follows (paths and ports aside); each must still be in it.
README_COMMANDS = [
    "a2enmod -q wsgi_hutch reqtimeout ssl headers proxy_http",
    "systemctl enable --now hutch-events@1 hutch-events@2",
    "systemctl enable --now hutch-delivery@1",
    "cp /srv/hutch/apache/haproxy.cfg /etc/haproxy/haproxy.cfg",
    "sed -i 's/^Listen 80$/Listen 127.0.0.1:8080/; /Listen 443/d' /etc/apache2/ports.conf",
    "a2dissite -q hutch 000-default",
    "cp /srv/hutch/apache/hutch-behind-front.conf /etc/apache2/conf-available/",
    "a2enconf -q hutch-behind-front",
    "echo HUTCH_INI=/etc/hutch/gateway.ini > /etc/hutch/hutch.env",
]


def service_section(path):
    """The ``[Service]`` settings of a unit file: each key's values, in order (keys may repeat)."""
    settings, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


class Unit:
    """One instance of a systemd unit, run as systemd would run it (see the module's docstring)."""

    def __init__(self, path, place):
        self.path = path
        self.place = place  # the host's paths and ports -> the instance's
        self.settings = service_section(path)
        self.process = None

    def here(self, text):
        for installed, instance in self.place.items():
            text = text.replace(installed, instance)
        return text

    def environment(self):
        account = pwd.getpwnam(self.settings["User"][0])
        environment = {
            "PATH": SYSTEMD_PATH,
            "LANG": "C.UTF-8",
            "HOME": account.pw_dir,
            "USER": account.pw_name,
            "LOGNAME": account.pw_name,
            "SHELL": account.pw_shell,
        }
        for value in self.settings.get("Environment", []):
            for assignment in shlex.split(self.here(value)):
                key, _, value = assignment.partition("=")
                environment[key] = value
        for value in self.settings.get("EnvironmentFile", []):
            optional = value.startswith("-")
            file = pathlib.Path(self.here(value.removeprefix("-")))
            if optional and not file.exists():
                continue
            for line in file.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    environment[key.strip()] = value.strip().strip('"')
        return environment

    def command(self):
        [exec_start] = self.settings["ExecStart"]
        return shlex.split(self.here(exec_start))

    def start(self, log):
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.here(self.settings["WorkingDirectory"][0]),
            user=self.settings["User"][0],
            group=self.settings["Group"][0],
            extra_groups=[],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(getattr(signal, self.settings["KillSignal"][0]))
        try:
            self.process.wait(timeout=float(self.settings["TimeoutStopSec"][0]))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def wait_listening(port, process, log, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"nothing listens on {port}:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


def gateway_ini(instance, push_store, push_allow):
    """production.ini, with the instance's var/ and the push settings a sysadmin sets."""
    text = (ROOT / "production.ini").read_text()
    text = text.replace("%(here)s/var/", f"{instance}/var/")
    lines = []
    for line in text.splitlines():
        if line.startswith("push_store ="):
            line = f"push_store = {push_store}"
        elif line.startswith("push_allow ="):
            line = f"push_allow = {push_allow}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    extra = f"apps_directory = {ROOT}/apps\ntemplates_directory = {ROOT}/templates\n"
    if "push_allow =" not in text:
        extra += f"push_allow = {push_allow}\n"
    text = text.replace("[app:main]\n", "[app:main]\n" + extra, 1)
    path = instance / "gateway.ini"
    path.write_text(text)
    path.chmod(0o644)
    return path


def start_apache(instance, http, environment):
    """Steps 2-5 and 8's Apache half, on the private instance."""
    confdir = write_instance_files(instance, http, free_port())
    (confdir / "ports.conf").write_text(f"Listen 127.0.0.1:{http}\n")  # step 8: behind HAProxy only
    etc = str(confdir)
    sh(f"install -d -o www-data -g www-data -m 0700 {instance}/var", environment)
    sh(f"{VENV_BIN}/mod_wsgi-express module-config > {etc}/mods-available/wsgi_hutch.load", environment)
    sh("a2dismod -q wsgi 2>/dev/null || true", environment)
    sh("a2enmod -q wsgi_hutch reqtimeout ssl headers proxy_http", environment)
    conf = (APACHE / "hutch.conf").read_text()
    conf = conf.replace("WSGISocketPrefix /var/run/apache2/wsgi", f"WSGISocketPrefix {instance}/run/wsgi")
    (confdir / "conf-available" / "hutch.conf").write_text(f"Define HUTCH_HOME {ROOT}\n" + conf)
    sh(f"cp {APACHE}/hutch-mpm.conf {etc}/conf-available/hutch-mpm.conf", environment)
    sh("a2enconf -q hutch hutch-mpm", environment)
    metrics = instance / "metrics"
    sh(f"echo 'export PROMETHEUS_MULTIPROC_DIR={metrics}' >> {etc}/envvars", environment)
    sh(f"/bin/rm -rf {metrics}", environment)
    sh(f"/usr/bin/install -d -o www-data -g www-data -m 0700 {metrics}", environment)
    sh(f"echo 'export HUTCH_INI={instance}/gateway.ini' >> {etc}/envvars", environment)
    sh("a2dissite -q hutch 000-default 2>/dev/null || a2dissite -q 000-default", environment)
    sh(f"cp {APACHE}/hutch-behind-front.conf {etc}/conf-available/", environment)
    sh("a2enconf -q hutch-behind-front", environment)
    sh("apache2ctl configtest", environment)
    sh("apache2ctl start", environment)


def stop_apache(instance, environment):
    sh("apache2ctl stop", environment, check=False)
    pid_file = instance / "run" / "apache2.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def front_config(instance, port, gateway_port, events_port):
    """haproxy.cfg with the instance's checkout and ports, and ``maxconn`` within this container.

    HAProxy started as root raises its descriptor limit to what ``maxconn`` needs (two each); this
    container's hard limit is lower, so the test sets ``maxconn`` as the README tells a sysadmin to
    (the streams' share, the last 256 kept for requests, follows).
    """
    text = (APACHE / "haproxy.cfg").read_text()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    maxconn = min(SHIPPED_MAXCONN, (hard - 200) // 2)
    streams = maxconn - 256
    for shipped, here in (
        (f"    maxconn {SHIPPED_MAXCONN}\n", f"    maxconn {maxconn}\n"),
        (f"be_conn gt {SHIPPED_MAXCONN - 256}", f"be_conn gt {streams}"),
        (f"maxconn {SHIPPED_MAXCONN - 256}\n", f"maxconn {streams}\n"),
        ("    bind :80\n", f"    bind 127.0.0.1:{port}\n"),
        ("server gateway 127.0.0.1:8080", f"server gateway 127.0.0.1:{gateway_port}"),
        ("server events 127.0.0.1:8081", f"server events 127.0.0.1:{events_port}"),
    ):
        assert shipped in text, shipped
        text = text.replace(shipped, here)
    text = text.replace(f"{INSTALLED}/", f"{ROOT}/")
    path = instance / "haproxy.cfg"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def host():
    instance = pathlib.Path(tempfile.mkdtemp(prefix="hutch-topology-"))
    os.chmod(instance, 0o755)  # www-data reads the ini and reaches the daemon sockets
    front, gateway_port, events_port = free_port(), free_port(), free_port()
    environment = {**os.environ, "APACHE_CONFDIR": str(instance / "apache2")}
    for name in ("HUTCH_INI", "PROMETHEUS_MULTIPROC_DIR"):
        environment.pop(name, None)
    redis_node = PrivateRedis(persistent=False).start()
    receiver = Receiver().start()
    units, haproxy = [], None
    try:
        ini = gateway_ini(instance, redis_node.url, "http://127.0.0.1:")
        (instance / "etc-hutch").mkdir()
        (instance / "etc-hutch" / "hutch.env").write_text(f"HUTCH_INI={ini}\n")  # the README's hutch.env
        place = {
            f"{INSTALLED}/": f"{ROOT}/",
            f"{INSTALLED}": f"{ROOT}",
            "/etc/hutch/": f"{instance}/etc-hutch/",
            "/run/hutch-metrics": f"{instance}/metrics",
            "--port 8081": f"--port {events_port}",
        }
        start_apache(instance, gateway_port, environment)  # it creates var/ and the metrics folder
        for name, count in (("hutch-events@.service", 2), ("hutch-delivery@.service", 1)):
            for number in range(1, count + 1):
                log = instance / f"{name.split('@')[0]}-{number}.log"
                units.append((Unit(APACHE / name, place).start(log.open("wb")), log))
        for unit, log in units[:2]:
            wait_listening(events_port, unit.process, log)
        config = front_config(instance, front, gateway_port, events_port)
        command = ["haproxy", "-c", "-f", str(config)]
        check = subprocess.run(command, capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        haproxy_log = instance / "haproxy.log"
        haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)], stdout=haproxy_log.open("wb"), stderr=subprocess.STDOUT
        )
        wait_listening(front, haproxy, haproxy_log)
        server = types.SimpleNamespace(
            instance=instance,
            origin=f"http://127.0.0.1:{front}",
            front=front,
            units=units,
            receiver=receiver,
            error_log=instance / "log" / "error.log",
        )
        wait_healthy(server)
        yield server
    finally:
        for unit, _ in units:
            unit.stop()
        stop_apache(instance, environment)
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(timeout=15)
        receiver.stop()
        redis_node.cleanup()
        shutil.rmtree(instance, ignore_errors=True)


def wait_healthy(server, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            response = requests.get(server.origin + "/gateway/health", timeout=5)
            if response.status_code == 200:
                return response
        log = server.error_log.read_text(errors="replace")[-4000:] if server.error_log.exists() else ""
        assert time.monotonic() < deadline, f"the gateway did not become healthy through the front:\n{log}"
        time.sleep(0.3)


def admin(server):
    for line in (server.instance / "var" / "api-keys").read_text().splitlines():
        words = line.split()
        if words and words[0] == "admin":
            return {"Authorization": f"Bearer {words[1]}"}
    raise AssertionError("no admin key")


def post(server, path, **kwargs):
    return requests.post(server.origin + path, headers=admin(server), timeout=30, **kwargs)


class Stream:
    """A raw-socket viewer of ``/gateway/events/{exchange}`` through the front."""

    def __init__(self, server, exchange):
        self.sock = socket.create_connection(("127.0.0.1", server.front), timeout=30)
        key = admin(server)["Authorization"]
        head = f"GET /gateway/events/{exchange} HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n\r\n"
        self.sock.sendall(head.encode())
        self.received = b""

    def read_until(self, marker, within=30.0):
        """True once ``marker`` came; False if the stream ended or ``within`` s passed (a bound)."""
        deadline = time.monotonic() + within
        while marker not in self.received and time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            self.received += chunk
        return marker in self.received

    def close(self):
        self.sock.close()


def test_the_readme_still_says_what_this_test_does():
    for command in README_COMMANDS:
        assert command in README, command


def test_the_units_run_as_their_user_from_the_shipped_command_lines(host):
    www_data = pwd.getpwnam("www-data").pw_uid
    for unit, log in host.units:
        assert unit.process.poll() is None, log.read_text()[-4000:]
        status = pathlib.Path(f"/proc/{unit.process.pid}/status").read_text()
        uid = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
        assert int(uid) == www_data
        assert unit.command()[0] == f"{ROOT}/.venv/bin/hutch"


def test_health_through_the_front_comes_from_apache_with_hsts(host):
    response = wait_healthy(host)
    assert response.json() == {"broker": "ok"}
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000"  # hutch-behind-front.conf


def test_a_stream_goes_to_the_event_servers_and_gets_live_broadcasts(host):
    exchange = amqp.unique("topology")
    try:
        # the exchange exists before its viewer (a viewer of an undeclared one is refused)
        assert post(host, f"/gateway/broadcast/{exchange}", data=b"before the viewer").status_code == 202
        stream = Stream(host, exchange)
        try:
            assert stream.read_until(b"\r\n\r\n")
            head = stream.received.split(b"\r\n\r\n", 1)[0].decode().lower()
            assert head.startswith("http/1.1 200"), head
            assert "text/event-stream" in head
            assert "connection: close" in head  # haproxy.cfg's events backend, not Apache's proxy
            # text/plain: an event shows a text body as text (an octet-stream body would come as hex)
            text = {"Content-Type": "text/plain", **admin(host)}
            watching = requests.post(
                host.origin + f"/gateway/broadcast/{exchange}",
                data=b"while watching",
                headers=text,
                timeout=30,
            )
            assert watching.status_code == 202
            assert stream.read_until(b"while watching"), stream.received
        finally:
            stream.close()
    finally:
        amqp.delete(exchanges=[exchange])


def test_notify_through_the_front_reaches_its_consumer_queue(host):
    exchange = amqp.unique("topology-notify")
    queue = f"{exchange}.c"
    try:
        unroutable = post(host, f"/gateway/notify/{exchange}", data=b"nobody yet")
        assert (unroutable.status_code, unroutable.json()["error"]) == (409, "unroutable")
        consumer = f"{host.origin}/gateway/notify/{exchange}/queues/c"
        created = requests.put(consumer, headers=admin(host), timeout=30)
        assert created.status_code == 201, created.text
        assert post(host, f"/gateway/notify/{exchange}", data=b"for c").status_code == 202
        assert amqp.queue_depth(queue) == 1
    finally:
        amqp.delete(exchanges=[exchange], queues=[queue])


def test_rpc_through_the_front(host):
    exchange = amqp.unique("topology-rpc")
    try:
        with amqp.Responder(exchange, "lookup"):
            response = post(host, f"/gateway/rpc/{exchange}/lookup", data=b"ping")
        assert response.status_code == 200, response.text
        assert response.content == b"ping"
        missing = post(host, f"/gateway/rpc/{exchange}/nobody-home", data=b"x")
        assert missing.status_code == 503 and missing.json()["error"] == "no_responder"
    finally:
        amqp.delete(exchanges=[exchange])


def test_the_delivery_unit_pushes_and_counts_in_apaches_metrics(host):
    exchange = amqp.unique("topology-push")
    base = f"{host.origin}/gateway/notify/{exchange}/queues/c/push"
    try:
        created = requests.put(base, json={"url": host.receiver.url}, headers=admin(host), timeout=30)
        assert created.status_code == 201, created.text
        assert post(host, f"/gateway/notify/{exchange}", data=b"pushed").status_code == 202
        delivered = wait_for(lambda: [r for r in host.receiver.ok() if r.body == b"pushed"], what="the push")
        assert host.receiver.unverified([created.json()["secret"]]) == []
        assert len(delivered) == 1

        def counted():
            text = requests.get(f"{host.origin}/gateway/metrics", headers=admin(host), timeout=30).text
            return f'hutch_push_delivered_total{{subscription="push/{exchange}/c"}} 1.0' in text

        wait_for(counted, what="the delivery's counter in /gateway/metrics")
    finally:
        requests.delete(base, headers=admin(host), timeout=30)
        amqp.delete(exchanges=[exchange], queues=[f"{exchange}.c"])


def test_the_event_servers_count_in_apaches_metrics(host):
    exchange = amqp.unique("topology-metrics")
    try:
        post(host, f"/gateway/broadcast/{exchange}", data=b"x")
        stream = Stream(host, exchange)
        assert stream.read_until(b"\r\n\r\n")
        stream.close()
    finally:
        amqp.delete(exchanges=[exchange])
    text = requests.get(f"{host.origin}/gateway/metrics", headers=admin(host), timeout=30).text
    assert 'app="events"' in text
