"""``hutch events``: run one event-server process for an ini (``hutch serve`` starts them itself).

Several processes may share one port (``SO_REUSEPORT``): the kernel spreads
new connections over them.  SIGTERM or SIGINT ends every stream with a
``closing`` event, then the process exits.
"""

import argparse
import logging
import os
import resource
import sys

from aiohttp import web

from hutch.events.server import make_app
from hutch.inifile import IniError, configure_logging, find_ini, load_settings
from hutch.settings import ConfigurationError

SHUTDOWN_TIMEOUT = 5.0  # seconds streams get to write their closing event


def parse(argv):
    parser = argparse.ArgumentParser(prog="hutch events", description=__doc__.splitlines()[0])
    parser.add_argument("--ini", default=None, help="default: $HUTCH_INI, else production.ini")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    return parser.parse_args(argv)


def raise_open_files_limit():
    """One descriptor per stream: take the hard limit, not the default soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    ini = find_ini(args.ini)
    try:
        settings = load_settings(ini)
    except (ConfigurationError, OSError, IniError) as error:
        sys.exit(f"hutch events: {ini}: {error}")
    configure_logging(ini)
    raise_open_files_limit()
    logging.getLogger(__name__).info("event server pid %d on %s:%d", os.getpid(), args.host, args.port)
    web.run_app(
        make_app(settings),
        host=args.host,
        port=args.port,
        reuse_port=True,
        access_log=None,
        print=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
