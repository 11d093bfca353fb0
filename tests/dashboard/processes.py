"""The mod_wsgi daemon processes of a test gateway, found by parent pid in /proc (never by name)."""

import os
import pathlib


def daemon_pids(server):
    """Pids of the daemon processes of ``server`` (children of its Apache parent, named (wsgi:...))."""
    parent = str(server.process.pid)
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == parent and command.startswith(b"(wsgi:"):
            found.append(int(entry.name))
    return sorted(found)


def terminate(pid):
    """What Apache does to restart a daemon: SIGTERM; mod_wsgi starts a new one."""
    os.kill(pid, 15)
