"""``hutch serve``'s processes as one service: Apache, the processes beside it and the front proxy.

``Supervisor`` starts mod_wsgi-express and the ``Children`` (the event servers,
the push delivery processes), forwards the signals it gets to them, restarts a
child that dies, and stops them all (then the front) when Apache stops;
``OutputRelay`` and ``append_to_output_files`` keep ``hutch serve > file``
whole when every process writes to it.
"""

import dataclasses
import fcntl
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from hutch.inifile import ROOT
from hutch.serve.plan import ServeError

EVENTS_START_WAIT = 30  # seconds the event servers may take to listen


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
