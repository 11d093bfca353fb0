"""``hutch serve``: run the gateway under mod_wsgi-express (daemon mode).

The flags mirror ``apache/hutch.conf`` so that what runs on a laptop is
what runs in production: processes x threads, request and queue timeouts,
bounded headers and bodies, a non-root daemon user when started as root.
"""

import argparse
import os
import pathlib
import pwd
import shutil
import sys

from .settings import _read_or_create_secret

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_USER = "www-data"


def serve_arguments(args):
    """The mod_wsgi-express command line for ``args`` (kept pure for tests)."""
    command = [
        "start-server",
        str(ROOT / "gateway.wsgi"),
        "--host", args.host,
        "--port", str(args.port),
        "--mount-point", args.mount_point,
        "--processes", str(args.processes),
        "--threads", str(args.threads),
        "--request-timeout", str(args.request_timeout),
        "--queue-timeout", str(args.queue_timeout),
        "--header-timeout", "15",
        "--body-timeout", "30",
        "--limit-request-body", str(args.limit_request_body),
        "--header-buffer-size", "32768",
        "--application-type", "script",
        "--locale", "C.UTF-8",
        "--log-to-terminal",
        "--working-directory", str(ROOT),
    ]  # fmt: skip
    if args.server_root:
        command += ["--server-root", args.server_root]
    if os.geteuid() == 0:
        command += ["--user", args.user, "--group", args.group or args.user]
    return command + list(args.extra)


def parse(argv):
    parser = argparse.ArgumentParser(prog="hutch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway under mod_wsgi-express")
    serve.add_argument("--ini", default=str(ROOT / "production.ini"))
    serve.add_argument("--host", default="localhost")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--mount-point", default="/")
    serve.add_argument("--processes", type=int, default=2)
    serve.add_argument("--threads", type=int, default=20)
    serve.add_argument("--request-timeout", type=int, default=330)
    serve.add_argument("--queue-timeout", type=int, default=30)
    serve.add_argument("--limit-request-body", type=int, default=2 * 1024 * 1024)
    serve.add_argument("--server-root", default=None)
    serve.add_argument("--user", default=DEFAULT_USER, help="daemon user when run as root")
    serve.add_argument("--group", default=None)
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="more mod_wsgi-express flags")
    return parser.parse_args(argv)


def prepare_secret(ini, user):
    """Create the session secret file before the daemons start, readable by them."""
    var = pathlib.Path(ini).resolve().parent / "var"
    secret = var / "session.secret"
    _read_or_create_secret(str(secret))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(var, entry.pw_uid, entry.pw_gid)
        os.chown(secret, entry.pw_uid, entry.pw_gid)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    ini = os.path.abspath(args.ini)
    os.environ["HUTCH_INI"] = ini
    prepare_secret(ini, args.user)
    express = shutil.which("mod_wsgi-express", path=os.path.dirname(sys.executable)) or shutil.which(
        "mod_wsgi-express"
    )
    if express is None:
        sys.exit("mod_wsgi-express is not installed: pip install mod_wsgi (needs apache2-dev)")
    command = serve_arguments(args)
    os.execv(express, [express, *command])  # noqa: S606 - replace this process, no shell


if __name__ == "__main__":
    main()
