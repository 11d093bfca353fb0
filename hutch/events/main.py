"""``hutch events``: run one event-server process for an ini (``hutch serve`` starts them itself).

Several processes may share one port (``SO_REUSEPORT``): the kernel spreads
new connections over them.  SIGTERM or SIGINT ends every stream with a
``closing`` event, then the process exits.
"""

import argparse
import configparser
import logging
import logging.config
import os
import resource
import sys

from aiohttp import web

from ..settings import ConfigurationError, parse_settings
from .server import make_app

SHUTDOWN_TIMEOUT = 5.0  # seconds streams get to write their closing event


def parse(argv):
    parser = argparse.ArgumentParser(prog="hutch events", description=__doc__.splitlines()[0])
    parser.add_argument("--ini", default=None, help="default: $HUTCH_INI, else production.ini")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    return parser.parse_args(argv)


def configure_logging(ini):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini, encoding="utf-8")
    if parser.has_section("loggers"):
        defaults = {"here": os.path.dirname(ini), "__file__": ini}
        logging.config.fileConfig(ini, defaults, disable_existing_loggers=False)


def raise_open_files_limit():
    """One descriptor per stream: take the hard limit, not the default soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_settings(ini):
    from ..cli import read_ini

    raw, here = read_ini(ini)
    return parse_settings(raw, here=here)


def main(argv=None):
    from ..cli import PRODUCTION_INI, ServeError

    args = parse(sys.argv[1:] if argv is None else argv)
    ini = os.path.abspath(args.ini or os.environ.get("HUTCH_INI") or PRODUCTION_INI)
    try:
        settings = load_settings(ini)
    except (ConfigurationError, OSError, ServeError) as error:
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
