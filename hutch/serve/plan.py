"""What ``hutch serve`` runs, decided and checked before anything starts.

From the ini and the flags: mod_wsgi-express's command line (``serve_arguments``,
with the limits ``server_limits`` derives from the ini), the command lines of
the event servers and the push delivery processes, the front proxy's plan, the
local ports, the open-files limit.  The flags mirror ``apache/hutch.conf`` so
that what runs on a laptop is what runs in production: processes x threads,
request and queue timeouts, slow-client read timeouts, bounded bodies, a
non-root daemon user when started as root; ``tests/unit/test_cli.py`` checks
that ``apache/hutch.conf`` carries the same numbers for ``production.ini``.

``prepare`` validates everything before Apache starts: the ini and its
settings, the daemon user and what it must read, the files the settings create
on first use (handed over to the daemon user), the metrics folder.
"""

import contextlib
import dataclasses
import math
import os
import pathlib
import pwd
import resource
import socket
import subprocess
import sys

from hutch.inifile import ROOT, IniError, find_ini, read_ini
from hutch.serve.front import REQUEST_SLOTS, FrontPlan, max_connections
from hutch.serve.metrics_dir import default_server_root, prepare_metrics_directory
from hutch.settings import ConfigurationError, parse_settings
from hutch.web.server_errors import BODY_SLACK, ERRORS_DIRECTORY, ERRORS_PATH, error_documents

SERVE_CONF = ROOT / "apache" / "serve.conf"  # TraceEnable Off
DEFAULT_USER = "www-data"
DEFAULT_PROCESSES = 2
DEFAULT_THREADS = 20  # request/response only (event streams are the event servers'); see apache/README.md
DEFAULT_PROXY_STREAMS = 1000  # event streams Apache proxies at once: each holds one Apache worker thread
# behind HAProxy Apache proxies only the streams asked for on a connection it already serves
FALLBACK_PROXY_STREAMS = 100
BEHIND_FRONT_CONF = ROOT / "apache" / "hutch-behind-front.conf"  # browsers' connections not kept alive

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


def delivery_arguments(ini):
    """The command line of one push delivery process (pure, for tests)."""
    return [sys.executable, "-m", "hutch.delivery.main", "--ini", ini]


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


def free_ports(count):
    """``count`` distinct ports free a moment ago on 127.0.0.1: bound together, so the kernel cannot
    hand the same one out twice (two ``bind(0)`` in a row may return one port twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


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
