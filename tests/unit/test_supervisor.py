"""``hutch serve``'s supervision: the console output every process writes to, signals, children, the front."""

import fcntl
import os
import signal
import subprocess
import sys
import threading

from hutch.serve import supervisor
from hutch.serve.front import FrontPlan, FrontProxy


def test_every_writer_appends_to_an_output_file_opened_without_append(tmp_path):
    path = tmp_path / "console.log"
    with open(path, "wb") as console:  # as ``hutch serve > console.log`` opens it
        supervisor.append_to_output_files([console.fileno()])
        os.write(console.fileno(), b"banner\n")
        # Apache opens ErrorLog /dev/stderr anew, in append mode; an event server writes through the
        # descriptor it inherited
        with open(f"/proc/self/fd/{console.fileno()}", "ab", buffering=0) as apache:
            apache.write(b"apache: connection to the broker lost\n")
        os.write(console.fileno(), b"event server: lost its connection\n")
    assert path.read_bytes() == (
        b"banner\napache: connection to the broker lost\nevent server: lost its connection\n"
    )


def test_a_pipe_on_the_output_is_left_as_it_is():
    read_end, write_end = os.pipe()
    try:
        flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
        supervisor.append_to_output_files([write_end])
        assert fcntl.fcntl(write_end, fcntl.F_GETFL) == flags
        os.write(write_end, b"line\n")
        assert os.read(read_end, 100) == b"line\n"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_an_event_server_stopped_by_a_signal_is_not_started_again(capfd):
    """SIGTERM stops everything: an event server that exits while Apache winds down stays stopped."""
    slow_to_stop = "import signal, time; signal.signal(signal.SIGTERM, lambda *_: None); time.sleep(2)"
    apache = [sys.executable, "-c", slow_to_stop]
    event_server = [sys.executable, "-c", "import time; time.sleep(60)"]
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    service = supervisor.Supervisor(apache, [supervisor.Children("event server", event_server, 1)])
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        service.run()
    finally:
        timer.cancel()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert "restarting it" not in capfd.readouterr().err
    assert all(process.poll() is not None for process in service.processes())


def test_a_front_that_dies_stops_everything_loudly(capfd, tmp_path):
    """Without its front nothing is served: Apache and the event servers are stopped, exit status 1."""
    apache = [sys.executable, "-c", "import time; time.sleep(60)"]
    event_server = [sys.executable, "-c", "import time; time.sleep(60)"]
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    plan = FrontPlan("127.0.0.1", 1, "/", 2, 3, 60, 300.0, 100)
    front = FrontProxy(plan, tmp_path)
    front.process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(3)"]
    )
    service = supervisor.Supervisor(
        apache, [supervisor.Children("event server", event_server, 1)], front=front
    )
    try:
        status = service.run()
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert status == 1
    assert "the front proxy exited (3); stopping everything" in capfd.readouterr().err
    assert service.express.poll() is not None
    assert all(process.poll() is not None for process in service.processes())
