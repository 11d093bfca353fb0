"""What the figures were measured on, written beside them."""

import importlib.metadata
import os
import platform
import subprocess

import pika

from .servers import ROOT


def _command(*argv):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (result.stdout + result.stderr).strip() or None


def cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def memory_gib():
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        return round(int(meminfo.readline().split()[1]) / 1024**2, 1)


def describe(rabbitmq_version=None):
    apache = _command("/usr/sbin/apache2", "-v") or ""
    wrk = _command("wrk", "-v") or ""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mod_wsgi": importlib.metadata.version("mod_wsgi"),
        "apache": apache.splitlines()[0].split(":", 1)[-1].strip() if apache else None,
        "pika": pika.__version__,
        "rabbitmq": rabbitmq_version,
        "wrk": wrk.splitlines()[0] if wrk else None,
        "load_average": os.getloadavg(),
        "git_commit": _command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_command("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")),
    }
