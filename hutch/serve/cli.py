"""The ``hutch`` command: ``hutch serve``, ``hutch events``, ``hutch delivery`` and ``hutch keys``.

``hutch serve`` runs the gateway under mod_wsgi-express (daemon mode) with the
settings of ``apache/hutch.conf`` and the limits derived from the ini
(``hutch.serve.plan``), with its event servers and push delivery processes
(``hutch.serve.supervisor``).

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
import os
import shutil
import sys

from hutch import __version__
from hutch.inifile import IniError, find_ini, read_ini
from hutch.serve import keys_cli
from hutch.serve.front import REQUEST_SLOTS, FrontError, FrontProxy, events_path
from hutch.serve.metrics_dir import default_server_root
from hutch.serve.plan import (
    DEFAULT_PROCESSES,
    DEFAULT_PROXY_STREAMS,
    DEFAULT_THREADS,
    DEFAULT_USER,
    FALLBACK_PROXY_STREAMS,
    QUEUE_TIMEOUT,
    ServeError,
    delivery_arguments,
    events_arguments,
    free_ports,
    front_plan,
    prepare_serving,
    raise_descriptor_limit,
)
from hutch.serve.supervisor import Children, Supervisor, append_to_output_files, regular_files, wait_listening

DEFAULT_EVENT_PROCESSES = 2
FRONTS = ("haproxy", "apache")
DEFAULT_FRONT = "haproxy"
INI_HELP = "the PasteDeploy ini (default: $HUTCH_INI, else production.ini beside gateway.wsgi)"


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default; an option whose help says its default (or that has
    none) is left as written."""

    def _get_help_string(self, action):
        if action.default is None or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


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


def delivery_children(ini, settings, count, user):
    """The push delivery processes (``hutch delivery``), when the ini sets ``push_store``: in a
    session of their own, so a terminal's Ctrl-C reaches ``hutch serve`` alone, which then sends
    them SIGTERM and lets the deliveries in flight finish."""
    if count <= 0 or not settings.push_store:
        return []
    print(f"hutch serve: {count} push delivery process(es) (hutch delivery)", file=sys.stderr, flush=True)
    return [Children("push delivery process", delivery_arguments(ini), count, user, new_session=True)]


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
