"""The README says one thing about the server's processes and threads, and it is what runs."""

import pathlib
import re

from hutch.cli import DEFAULT_PROCESSES, DEFAULT_THREADS

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_thread_count_in_the_docs_is_the_default():
    conf = (ROOT / "apache" / "hutch.conf").read_text()
    assert f"processes={DEFAULT_PROCESSES}" in conf and f"threads={DEFAULT_THREADS}" in conf
    for name in ("README.md", "apache/README.md", "docs/deployment.md"):
        text = (ROOT / name).read_text()
        flags = re.findall(r"--threads (\d+)", text)
        groups = re.findall(r"(\d+|two) (?:daemon )?processes\s+(?:\u00d7|x|of)\s+(\d+) threads", text)
        assert flags or groups or name == "README.md", name  # README.md points to docs/deployment.md
        assert {int(count) for count in flags} <= {DEFAULT_THREADS}, f"{name}: --threads {flags}"
        for processes, threads in groups:
            count = 2 if processes == "two" else int(processes)
            assert (count, int(threads)) == (DEFAULT_PROCESSES, DEFAULT_THREADS), name
