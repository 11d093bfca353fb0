"""The mod_wsgi daemon processes of a test gateway, found by parent pid in /proc (never by name)."""

import os

from harness.server import children_of


def daemon_pids(server):
    """Pids of the daemon processes of ``server`` (children of its Apache parent, named (wsgi:...))."""
    return sorted(pid for pid, daemon in children_of(server.process.pid) if daemon)


def terminate(pid):
    """What Apache does to restart a daemon: SIGTERM; mod_wsgi starts a new one."""
    os.kill(pid, 15)
