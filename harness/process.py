"""What every helper process of the harness does alike: stop by pid, and clean up after ``with``."""

import shutil
import subprocess


def terminate(process, timeout=10):
    """SIGTERM ``process`` (a Popen) and wait; SIGKILL it if it has not ended within ``timeout`` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class ScratchProcess:
    """A process with a scratch folder (``self.directory``) of its own.

    ``with`` starts it; leaving stops it and removes the folder.  Subclasses define ``start``
    (returning self) and ``stop``.
    """

    directory = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
