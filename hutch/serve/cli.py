"""``hutch serve``: run the gateway under mod_wsgi-express (daemon mode), with its event servers.

The flags mirror ``apache/hutch.conf`` so that what runs on a laptop is
what runs in production: processes x threads, request and queue timeouts,
slow-client read timeouts, bounded bodies, a non-root daemon user when
started as root.  The limits that depend on the gateway's own settings
(body size, how long a request may legitimately run) are derived from the
ini by ``server_limits``; ``tests/unit/test_cli.py`` checks that
``apache/hutch.conf`` carries the same numbers for ``production.ini``.

``GET /events/...`` is not served by mod_wsgi: ``hutch serve`` starts the
asyncio event servers (``hutch events``, ``--events-processes`` of them on
one local port) and serves everything on one port and mount point: by
default HAProxy on the public port sends connections for ``{mount}/events/``
to them and the rest to mod_wsgi-express on a loopback port (``hutch.serve.front``:
no thread per stream); with ``--front apache`` Apache serves the port and
proxies the sub-URL itself (a worker thread per stream).  It stops them all
when Apache stops or it is told to.
"""

import argparse
import contextlib
import dataclasses
import fcntl
import math
import os
import pathlib
import pwd
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from hutch import __version__
from hutch.inifile import ROOT, IniError, find_ini, read_ini
from hutch.serve import keys_cli
from hutch.serve.front import REQUEST_SLOTS, FrontError, FrontPlan, FrontProxy, events_path, max_connections
from hutch.serve.metrics_dir import default_server_root, prepare_metrics_directory
from hutch.settings import ConfigurationError, parse_settings
from hutch.web.server_errors import BODY_SLACK, ERRORS_DIRECTORY, ERRORS_PATH, error_documents

SERVE_CONF = ROOT / "apache" / "serve.conf"  # TraceEnable Off
DEFAULT_USER = "www-data"
DEFAULT_PROCESSES = 2
DEFAULT_THREADS = 20  # request/response only (event streams are the event servers'); see apache/README.md
DEFAULT_EVENT_PROCESSES = 2
DEFAULT_PROXY_STREAMS = 1000  # event streams Apache proxies at once: each holds one Apache worker thread
# behind HAProxy Apache proxies only the streams asked for on a connection it already serves
FALLBACK_PROXY_STREAMS = 100
FRONTS = ("haproxy", "apache")
DEFAULT_FRONT = "haproxy"
BEHIND_FRONT_CONF = ROOT / "apache" / "hutch-behind-front.conf"  # browsers' connections not kept alive
EVENTS_START_WAIT = 30  # seconds the event servers may take to listen

TIMEOUT_SLACK = 30  # seconds beyond the longest legitimate wait
MIN_SOCKET_TIMEOUT = 60
QUEUE_TIMEOUT = 30
# Slow-client protection (mod_reqtimeout), as apache/hutch.conf:
# RequestReadTimeout header=10-20,MinRate=500 body=20,MinRate=500
READ_TIMEOUTS = (
    "--header-timeout", "10",
    "--header-max-timeout", "20",
    "--header-min-rate", "500",
    "--body-timeout", "20",
    "--body-min-rate", "500",
)  # fmt: skip


class ServeError(Exception):
    """``hutch serve`` cannot start; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    limit_request_body: int
    request_timeout: int
    socket_timeout: int
    queue_timeout: int = QUEUE_TIMEOUT


def server_limits(settings):
    """Apache's limits for a gateway with ``settings``.

    - ``limit_request_body``: a little above ``max_body_bytes``, so the
      gateway answers its JSON 413 and Apache only stops absurd bodies.
    - ``request_timeout``: above the longest a request may legitimately run
      in mod_wsgi: an RPC's maximum (event streams run in the event servers).
    - ``socket_timeout``: how long Apache (and the front proxy) wait for the
      daemon's next bytes; above the longest silence: an RPC waiting for its
      reply, a publish waiting for its confirm.
    """
    longest_request = max(settings.rpc_max_timeout, settings.publish_timeout)
    longest_silence = max(
        settings.rpc_max_timeout,
        settings.publish_timeout,
        settings.connect_timeout,
        settings.events_heartbeat,
    )
    return ServerLimits(
        limit_request_body=settings.max_body_bytes + BODY_SLACK,
        request_timeout=math.ceil(longest_request) + TIMEOUT_SLACK,
        socket_timeout=max(MIN_SOCKET_TIMEOUT, math.ceil(longest_silence) + TIMEOUT_SLACK),
    )


def events_mount(mount_point):
    """The sub-URL Apache proxies to the event servers: ``/events`` under the mount point."""
    return mount_point.rstrip("/") + "/events"


def proxy_streams(args):
    """How many event streams Apache may proxy: ``--proxy-streams``, else by front."""
    if args.proxy_streams is not None:
        return args.proxy_streams
    return DEFAULT_PROXY_STREAMS if args.front == "apache" else FALLBACK_PROXY_STREAMS


def serve_arguments(args, limits, as_root=False, gateway_port=None, events_port=None):
    """The mod_wsgi-express command line for ``args`` (pure, for tests).  With ``gateway_port``
    Apache listens there on loopback, behind the front proxy, in the server root of the public
    address; with ``events_port`` Apache itself proxies ``{mount}/events`` to the event servers
    (behind the front, only the streams asked for on a connection Apache already serves)."""
    host, port = ("127.0.0.1", gateway_port) if gateway_port else (args.host, args.port)
    command = [
        "start-server",
        str(ROOT / "gateway.wsgi"),
        "--application-type", "script",
        "--host", host,
        "--port", str(port),
        "--mount-point", args.mount_point,
        "--processes", str(args.processes),
        "--threads", str(args.threads),
        "--request-timeout", str(args.request_timeout or limits.request_timeout),
        "--socket-timeout", str(args.socket_timeout or limits.socket_timeout),
        "--queue-timeout", str(args.queue_timeout or limits.queue_timeout),
        "--limit-request-body", str(args.limit_request_body or limits.limit_request_body),
        *READ_TIMEOUTS,
        "--chunked-request",
        "--include-file", str(ROOT / "apache" / "batch-bodies.conf"),
        "--include-file", str(ROOT / "apache" / "chunked-bodies.conf"),
        "--header-buffer-size", "32768",
        "--locale", "C.UTF-8",
        "--log-to-terminal",
        "--working-directory", str(ROOT),
        *apache_errors_arguments(args.mount_point),
    ]  # fmt: skip
    if events_port is not None:
        command += [
            "--proxy-mount-point", events_mount(args.mount_point), f"http://127.0.0.1:{events_port}/events",
            "--max-clients", str(proxy_streams(args) + args.processes * args.threads),
        ]  # fmt: skip
    if gateway_port:
        command += ["--include-file", str(BEHIND_FRONT_CONF)]
    if args.server_root or gateway_port:
        command += ["--server-root", args.server_root or default_server_root(args.host, args.port)]
    if as_root:
        command += ["--user", args.user, "--group", args.group or args.user]
    return command + list(args.extra)


def apache_errors_arguments(mount_point):
    """No TRACE, and Apache's own errors as the contract's JSON (hutch.web.server_errors)."""
    arguments = ["--include-file", str(SERVE_CONF)]
    arguments += ["--url-alias", mount_point.rstrip("/") + ERRORS_PATH, str(ERRORS_DIRECTORY)]
    for status, document in error_documents(mount_point):
        arguments += ["--error-document", str(status), document]
    return arguments


INI_HELP = "the PasteDeploy ini (default: $HUTCH_INI, else production.ini beside gateway.wsgi)"


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default; an option whose help says its default (or that has
    none) is left as written."""

    def _get_help_string(self, action):
        if action.default is None or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def delivery_arguments(ini):
    """The command line of one push delivery process (pure, for tests)."""
    return [sys.executable, "-m", "hutch.delivery.main", "--ini", ini]


def delivery_children(ini, settings, count, user):
    """The push delivery processes (``hutch delivery``), when the ini sets ``push_store``: in a
    session of their own, so a terminal's Ctrl-C reaches ``hutch serve`` alone, which then sends
    them SIGTERM and lets the deliveries in flight finish."""
    if count <= 0 or not settings.push_store:
        return []
    print(f"hutch serve: {count} push delivery process(es) (hutch delivery)", file=sys.stderr, flush=True)
    return [Children("push delivery process", delivery_arguments(ini), count, user, new_session=True)]


def events_arguments(ini, port):
    """The command line of one event server (pure, for tests)."""
    return [
        sys.executable,
        "-m",
        "hutch.events.main",
        "--ini",
        ini,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def parse(argv):
    """``hutch serve [options] [mod_wsgi-express flags...]`` (unknown flags go to mod_wsgi-express),
    or ``hutch keys ...``."""
    parser = argparse.ArgumentParser(
        prog="hutch",
        description="Hutch, an HTTP gateway to RabbitMQ: serve it, and manage its API keys.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"hutch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the gateway under mod_wsgi-express",
        description="Serve the gateway under mod_wsgi-express (Apache httpd, mod_wsgi daemon mode) with "
        "the settings of apache/hutch.conf; the server's limits are derived from the ini.",
        allow_abbrev=False,
        formatter_class=DefaultsHelp,
        epilog="Any other flag (e.g. --log-level info) is passed on to mod_wsgi-express start-server.",
    )
    serve.add_argument("--ini", default=None, help=INI_HELP)
    serve.add_argument("--host", default="localhost", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="the port to listen on")
    serve.add_argument("--mount-point", default="/", help="the URL path the gateway is served under")
    serve.add_argument("--processes", type=int, default=DEFAULT_PROCESSES, help="mod_wsgi daemon processes")
    serve.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads per daemon process")
    serve.add_argument("--request-timeout", type=int, default=None, help="seconds (default: from the ini)")
    serve.add_argument("--socket-timeout", type=int, default=None, help="seconds (default: from the ini)")
    serve.add_argument("--queue-timeout", type=int, default=None, help=f"seconds (default: {QUEUE_TIMEOUT})")
    serve.add_argument("--limit-request-body", type=int, default=None, help="bytes (default: from the ini)")
    serve.add_argument(
        "--events-processes",
        type=int,
        default=DEFAULT_EVENT_PROCESSES,
        help="asyncio event-server processes (0: none, and no front proxy: Apache serves the port "
        "and /events is not served)",
    )
    serve.add_argument("--events-port", type=int, default=0, help="their local port (default: a free one)")
    serve.add_argument(
        "--front",
        choices=FRONTS,
        default=DEFAULT_FRONT,
        help="what serves the public port: haproxy (in front of Apache and the event servers: no "
        "thread per stream, a viewer beyond capacity gets 503 at once) or apache (it proxies /events "
        "itself, a worker thread per stream: a few hundred viewers)",
    )
    serve.add_argument(
        "--proxy-streams",
        type=int,
        default=None,
        help=f"event streams Apache proxies at once, one Apache worker thread each (default: "
        f"{DEFAULT_PROXY_STREAMS} with --front apache, {FALLBACK_PROXY_STREAMS} behind HAProxy, where "
        "Apache proxies only streams asked for on a connection it already serves)",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        default=None,
        help="--front haproxy: event streams the host holds at once; a viewer beyond gets 503 with "
        "Retry-After (default: what the descriptor limit allows, two per stream, less "
        f"{REQUEST_SLOTS} connections kept for requests)",
    )
    serve.add_argument(
        "--gateway-port",
        type=int,
        default=0,
        help="--front haproxy: mod_wsgi-express's local port (default: a free one)",
    )
    serve.add_argument(
        "--delivery-processes",
        type=int,
        default=1,
        help="push delivery processes (hutch delivery) when the ini sets push_store (0: none)",
    )
    serve.add_argument("--server-root", default=None, help="default: mod_wsgi-express's, under /tmp")
    serve.add_argument("--user", default=DEFAULT_USER, help="the daemon user when run as root")
    serve.add_argument("--group", default=None, help="the daemon group when run as root (default: --user)")
    events = commands.add_parser(
        "events", help="run one event server (hutch serve starts them)", add_help=False
    )
    events.add_argument("rest", nargs=argparse.REMAINDER)
    delivery = commands.add_parser("delivery", help="run one push delivery process (hutch serve starts them)")
    delivery.add_argument("rest", nargs=argparse.REMAINDER)
    keys_cli.add_parser(commands, INI_HELP, DefaultsHelp)
    args, extra = parser.parse_known_args(argv)
    if args.command != "serve" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = [word for word in extra if word != "--"]
    return args


def load_ini_for_keys(args):
    """The ini ``hutch keys`` works on, found as ``hutch serve`` finds it, and its settings."""
    ini = find_ini(args.ini)
    try:
        raw, _here = read_ini(ini)
    except IniError as error:
        raise keys_cli.KeysError(str(error)) from None
    return ini, raw


def startup_files(raw):
    """The files the settings name that the gateway creates on first use."""
    return [path for path in (raw.get("session_secret_file"), raw.get("auth.key_file")) if path]


def files_created_at_start(raw):
    """Files the settings create on first use (session secret, API key file).

    ``hutch serve`` parses the ini before Apache starts, so when it runs as
    root these files would be root's and unreadable by the daemon; the
    ones (and the folders) that do not exist yet are handed over after.
    """
    created = []
    for path in startup_files(raw):
        path = pathlib.Path(path)
        for candidate in (path, *path.parents):
            if candidate.exists():
                break
            created.append(candidate)
    return created


def hand_over(paths, user):
    """Give the daemon user what ``hutch serve`` created for it as root."""
    entry = pwd.getpwnam(user)
    for path in paths:
        if path.exists():
            os.chown(path, entry.pw_uid, entry.pw_gid)


def unreadable_by(user, paths):
    """The ``paths`` that ``user`` cannot read (folders: read and enter).

    Asked of the system by running ``test`` as that user, so every folder
    above each path, ACLs and group memberships count as they will for the
    daemon.
    """
    entry = pwd.getpwnam(user)
    script = (
        'for p do if [ -d "$p" ]; then [ -r "$p" ] && [ -x "$p" ]; else [ -r "$p" ]; fi || echo "$p"; done'
    )
    result = subprocess.run(  # noqa: S603 - fixed program, paths as arguments
        ["/bin/sh", "-c", script, "sh", *map(str, paths)],
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    return [line for line in result.stdout.splitlines() if line]


def daemon_paths(ini, settings):
    """What the daemon processes must be able to read."""
    import mod_wsgi

    return [
        ROOT / "gateway.wsgi",
        pathlib.Path(ini),
        ROOT / "hutch" / "__init__.py",
        pathlib.Path(settings.apps_directory),
        ERRORS_DIRECTORY,  # Apache's children (the same user) serve its error documents
        pathlib.Path(sys.prefix) / "pyvenv.cfg",
        pathlib.Path(mod_wsgi.__file__),
    ]


def check_user(user):
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ServeError(f"the daemon user {user!r} does not exist; pass --user") from None


def check_daemon_access(user, paths):
    missing = unreadable_by(user, paths)
    if missing:
        raise ServeError(
            f"the daemon user {user!r} cannot read {', '.join(missing)}: every folder above "
            "these needs o+x and the files o+r (bin/setup grants that), or pass --user"
        )


def resolve_ini(args):
    """The ini to serve: --ini, else $HUTCH_INI, else production.ini beside gateway.wsgi.

    Only an explicit --ini is exported as HUTCH_INI: with neither, the
    daemons get no environment and gateway.wsgi falls back on production.ini
    itself, as under Apache.
    """
    if args.ini:
        ini = os.path.abspath(args.ini)
        os.environ["HUTCH_INI"] = ini
        return ini
    return find_ini()


def prepare(args, as_root, gateway_port=None, events_port=None):
    """Validate everything before Apache starts; return mod_wsgi-express's arguments and the ini."""
    command, ini, _settings = prepare_serving(args, as_root, gateway_port, events_port)
    return command, ini


def prepare_serving(args, as_root, gateway_port=None, events_port=None):
    """``prepare``, and the parsed settings (the front proxy's timeouts come from them)."""
    ini = resolve_ini(args)
    try:
        raw, here = read_ini(ini)
    except IniError as error:
        raise ServeError(str(error)) from None
    if as_root:
        check_user(args.user)
    created = files_created_at_start(raw)
    try:
        settings = parse_settings(raw, here=here)
    except (ConfigurationError, OSError) as error:
        raise ServeError(f"{ini}: {error}") from None
    finally:
        if as_root:
            hand_over(created, args.user)
    if as_root:
        kept = [pathlib.Path(path) for path in startup_files(raw)]
        paths = daemon_paths(ini, settings) + [path for path in kept if path.exists()]
        check_daemon_access(args.user, paths)
    server_root = args.server_root or default_server_root(args.host, args.port)
    try:
        prepare_metrics_directory(server_root, args.user if as_root else None)
    except OSError as error:
        raise ServeError(f"cannot prepare the metrics folder in {server_root}: {error}") from None
    limits = server_limits(settings)
    return serve_arguments(args, limits, as_root, gateway_port, events_port), ini, settings


def front_plan(args, settings, gateway_port, events_port, as_root):
    """Where the front proxy listens and what it sends where, for ``args`` and the ini's settings."""
    return FrontPlan(
        host=args.host,
        port=args.port,
        mount_point=args.mount_point,
        gateway_port=gateway_port,
        events_port=events_port,
        gateway_timeout=args.socket_timeout or server_limits(settings).socket_timeout,
        stream_lifetime=settings.events_max_lifetime,
        max_connections=max_connections() if args.max_streams is None else args.max_streams + REQUEST_SLOTS,
        user=args.user if as_root else None,
    )


def free_ports(count):
    """``count`` distinct ports free a moment ago on 127.0.0.1: bound together, so the kernel cannot
    hand the same one out twice (two ``bind(0)`` in a row may return one port twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def wait_listening(port, processes, timeout=EVENTS_START_WAIT):
    """Wait until the event servers accept connections; stop early if one of them died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise ServeError("an event server exited at start; its log is above")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ServeError(f"the event servers did not listen on port {port} within {timeout} s")


def append_to_output_files(descriptors=(1, 2)):
    """Put a regular file on stdout or stderr in append mode, for every process that writes to it.

    Apache opens its error log (``/dev/stderr`` here) anew, in append mode;
    the event servers write through the descriptor they inherit, at its own
    offset.  Without ``O_APPEND`` on that descriptor (``hutch serve > file``)
    their lines overwrite Apache's instead of following them.
    """
    for descriptor in descriptors:
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                continue  # a terminal, a pipe, the journal: writes never overwrite each other
            flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
            if not flags & os.O_APPEND:
                fcntl.fcntl(descriptor, fcntl.F_SETFL, flags | os.O_APPEND)
        except OSError:
            continue


def raise_descriptor_limit():
    """Raise this process's soft limit on open descriptors to the hard one (what every process it
    starts inherits): each event stream costs three on the host, two in the front (HAProxy) and one
    in an event server, and the front is sized from the limit (``hutch.serve.front.max_connections``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft
    return hard


@dataclasses.dataclass
class Children:
    """One kind of process ``hutch serve`` runs beside Apache (the event servers, ...): what to run,
    how many, as whom.  A ``Supervisor`` starts ``count`` of them and restarts one that dies."""

    name: str  # for the log: "an {name} exited"
    command: list
    count: int
    user: str | None = None
    new_session: bool = False  # out of the terminal's process group (Ctrl-C reaches hutch serve only)
    processes: list = dataclasses.field(default_factory=list)

    def start_one(self):
        extra = {}
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.Popen(  # noqa: S603 - our own command
            self.command, cwd=ROOT, start_new_session=self.new_session, **extra
        )

    def start(self):
        self.processes = [self.start_one() for _ in range(self.count)]
        return self


def regular_files(descriptors=(1, 2)):
    """Which of ``descriptors`` are regular files (``hutch serve > file``)."""
    found = []
    for descriptor in descriptors:
        try:
            if stat.S_ISREG(os.fstat(descriptor).st_mode):
                found.append(descriptor)
        except OSError:
            continue
    return found


class OutputRelay:
    """Apache's output through pipes that this process copies to its own stdout and stderr.

    mod_wsgi-express checks that it may write its logs by opening
    ``/dev/stdout`` and ``/dev/stderr`` with ``open(..., "w")``: on a regular
    file that truncates it, and ``bin/run > file`` lost what came before
    (bin/setup's lines).  A pipe cannot be truncated; only the descriptors
    that are regular files are relayed (a terminal or the journal are left
    as they are).
    """

    def __init__(self, descriptors):
        self.pipes = {}
        self.threads = []
        for descriptor in descriptors:
            read_end, write_end = os.pipe()
            self.pipes[descriptor] = write_end
            thread = threading.Thread(target=self.copy, args=(read_end, descriptor), daemon=True)
            thread.start()
            self.threads.append(thread)

    @staticmethod
    def copy(read_end, descriptor):
        with os.fdopen(read_end, "rb", buffering=0) as source:
            while chunk := source.read(65536):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(descriptor, view) :]

    def popen_arguments(self):
        """stdout/stderr for the child; the write ends are closed here once the child has them."""
        return {"stdout": self.pipes.get(1), "stderr": self.pipes.get(2)}

    def started(self):
        for write_end in self.pipes.values():
            os.close(write_end)

    def finish(self, timeout=5):
        """Wait until everything Apache (and its daemons) wrote is copied."""
        for thread in self.threads:
            thread.join(timeout)


class Supervisor:
    """Apache (mod_wsgi-express), the processes beside it (``Children``) and the front proxy as one
    service.

    SIGTERM, SIGINT and SIGHUP go to Apache and the children; when Apache
    exits (Ctrl-C, ``apachectl stop``) the children are stopped too (each
    event server ends its streams with ``closing``, through the front), then
    the front.  A child that dies is restarted; a front that dies stops
    everything, loudly: without it nothing is served.
    """

    def __init__(self, express_command, children, front=None):
        self.express_command = express_command
        self.children = [group.start() for group in children]
        self.front = front
        self.express = None
        self.stopping = False  # after SIGTERM/SIGINT a child that exits is not restarted

    def processes(self):
        return [process for group in self.children for process in group.processes]

    def forward(self, signum, _frame):
        self.stopping = signum != signal.SIGHUP  # Apache's graceful restart: children start again
        if self.express is not None and self.express.poll() is None:
            self.express.send_signal(signum)
        for process in self.processes():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.forward)
        relay = OutputRelay(regular_files())
        self.express = subprocess.Popen(self.express_command, **relay.popen_arguments())  # noqa: S603 - ours
        relay.started()
        failed = False
        try:
            while self.express.poll() is None:
                time.sleep(0.5)
                if self.front is not None and self.front.poll() is not None and not self.stopping:
                    print(
                        f"hutch serve: the front proxy exited ({self.front.poll()}); stopping everything",
                        file=sys.stderr,
                    )
                    failed = True
                    self.forward(signal.SIGTERM, None)
                    continue
                self.restart_exited()
        finally:
            self.stop_children()
            if self.front is not None:
                self.front.stop()
            relay.finish()
        return 1 if failed else self.express.returncode

    def restart_exited(self):
        for group in self.children:
            for index, process in enumerate(group.processes):
                if process.poll() is not None and self.express.poll() is None and not self.stopping:
                    print(
                        f"hutch serve: an {group.name} exited ({process.returncode}); restarting it",
                        file=sys.stderr,
                    )
                    group.processes[index] = group.start_one()

    def stop_children(self, timeout=15):
        for process in self.processes():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["events"]:
        from hutch.events.main import main as events_main

        return events_main(argv[1:])
    if argv[:1] == ["delivery"]:
        from hutch.delivery.main import main as delivery_main

        return delivery_main(argv[1:])
    args = parse(argv)
    if args.command == "keys":
        sys.exit(keys_cli.run(args, load_ini_for_keys))
    as_root = os.geteuid() == 0
    serving_events = args.events_processes > 0
    spare_ports = iter(free_ports(2))
    events_port = (args.events_port or next(spare_ports)) if serving_events else None
    fronted = serving_events and args.front == "haproxy"
    gateway_port = (args.gateway_port or next(spare_ports)) if fronted else None
    try:
        command, ini, settings = prepare_serving(args, as_root, gateway_port, events_port)
    except ServeError as error:
        sys.exit(f"hutch serve: {error}")
    express = shutil.which("mod_wsgi-express", path=os.path.dirname(sys.executable)) or shutil.which(
        "mod_wsgi-express"
    )
    if express is None:
        sys.exit("hutch serve: mod_wsgi-express is not installed: pip install mod_wsgi (needs apache2-dev)")
    append_to_output_files()
    raise_descriptor_limit()
    user = args.user if as_root else None
    delivery = delivery_children(ini, settings, args.delivery_processes, user)
    if not serving_events and not regular_files() and not delivery:
        os.execv(express, [express, *command])  # noqa: S606 - replace this process, no shell
    if not serving_events:  # Apache alone (with any delivery processes), its output relayed (OutputRelay)
        sys.exit(Supervisor([express, *command], delivery).run())
    event_servers = Children("event server", events_arguments(ini, events_port), args.events_processes, user)
    front = None
    if fronted:
        server_root = args.server_root or default_server_root(args.host, args.port)
        front = FrontProxy(front_plan(args, settings, gateway_port, events_port, as_root), server_root)
        try:
            front.check()
        except FrontError as error:
            sys.exit(f"hutch serve: {error}")
    supervisor = Supervisor([express, *command], [event_servers, *delivery], front=front)
    try:
        wait_listening(events_port, event_servers.processes)
        if front is not None:
            front.start()
    except (ServeError, FrontError) as error:
        supervisor.stop_children()
        if front is not None:
            front.stop()
        sys.exit(f"hutch serve: {error}")
    if front is not None:
        print(
            f"hutch serve: http://{args.host}:{args.port}{args.mount_point} is HAProxy: "
            f"{events_path(args.mount_point)} to the event servers on 127.0.0.1:{events_port}, the rest to "
            f"mod_wsgi-express on 127.0.0.1:{gateway_port} (its 'Server URL' below)",
            file=sys.stderr,
            flush=True,
        )
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
