"""The delivery processes ``hutch serve`` runs beside Apache and the event servers.

Started once the gateway's command line is ready; a process that exits is
started again (a SIGKILLed one leaves its unacked messages to the others
and to its successor); ``stop`` (at exit of ``hutch serve``) sends SIGTERM,
which lets deliveries in flight finish, and waits.  They inherit the
environment, so their metrics land in the server's Prometheus folder and
``GET /metrics`` shows them.
"""

import atexit
import pwd
import signal
import subprocess
import sys
import threading
import time

WATCH = 1.0  # seconds between looks at the processes
STOP_WAIT = 20.0  # seconds they get to finish what is in flight after SIGTERM


def delivery_arguments(ini):
    """The command line of one delivery process (pure, for tests)."""
    return [sys.executable, "-m", "hutch.delivery.main", "--ini", ini]


class DeliveryGroup:
    def __init__(self, command, processes, cwd, user=None):
        self.command = command
        self.count = processes
        self.cwd = cwd
        self.user = user
        self.processes = []
        self.stopping = threading.Event()
        self.watcher = None

    def spawn(self):
        extra = {}
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        # A session of their own: a terminal's Ctrl-C reaches hutch serve alone, which then stops
        # them in order (rather than their exiting at once and the watcher starting them again).
        return subprocess.Popen(  # noqa: S603 - our own command
            self.command, cwd=self.cwd, start_new_session=True, **extra
        )

    def start(self):
        self.processes = [self.spawn() for _ in range(self.count)]
        self.watcher = threading.Thread(target=self.watch, name="delivery-watch", daemon=True)
        self.watcher.start()
        atexit.register(self.stop)
        return self

    def watch(self):
        while not self.stopping.wait(WATCH):
            for index, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping.is_set():
                    print(
                        f"hutch serve: a delivery process exited ({process.returncode}); restarting it",
                        file=sys.stderr,
                    )
                    self.processes[index] = self.spawn()

    def stop(self, timeout=STOP_WAIT):
        self.stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_delivery(ini, settings, processes, cwd, user=None):
    """For ``hutch serve``: start ``processes`` delivery processes if the ini sets ``push_store``."""
    if processes <= 0 or not settings.push_store:
        return None
    print(f"hutch serve: {processes} push delivery process(es) (hutch delivery)", file=sys.stderr, flush=True)
    return DeliveryGroup(delivery_arguments(ini), processes, cwd, user).start()
