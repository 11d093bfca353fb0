"""The README's five-minute tour, run as written against a gateway that serves ``production.ini``
as ``bin/run`` does (``hutch serve``, API keys from a key file the first start creates).

Every fenced ``sh`` block of the tour runs through bash from the checkout, in order: the key is
read from the key file with the README's own ``awk``, the example programs run with
``.venv/bin/python``, and where the README shows the answer (an ``http`` or ``text`` block after the
command) the command's output must match it.  Only what cannot be the same on a test machine is
rewritten, in plain sight (``REWRITES``): the gateway's URL, the key file's place, and the broker
names, made unique so the tour cannot meet another run's queues.  The responder runs in the
background as the README's "third terminal", and the README's claim about stopping it is checked.
"""

import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from harness import amqp
from harness.server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WAIT = 30
RESPONDER = ".venv/bin/python examples/rpc_responder.py"


def tour():
    """The tour's fenced blocks, in order: ``[(language, text), ...]``."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    return re.findall(r"^```(\w+)\n(.*?)^```$", text[start:end], flags=re.MULTILINE | re.DOTALL)


def steps():
    """``(command, expected)`` for each ``sh`` block, ``expected`` the block after it if it shows output."""
    blocks = tour()
    found = []
    for index, (language, text) in enumerate(blocks):
        if language != "sh":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
        found.append((text.strip(), following if following[0] in ("http", "text") else None))
    return found


@pytest.fixture
def production(tmp_path_factory):
    """``production.ini`` in a folder of its own (its ``var/`` is created by the first start)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="hutch-readme-"))
    os.chmod(folder, 0o755)
    text = (ROOT / "production.ini").read_text()
    text = text.replace(
        "[app:main]\n",
        f"[app:main]\napps_directory = {ROOT}/apps\ntemplates_directory = {ROOT}/templates\n",
        1,
    )
    (folder / "production.ini").write_text(text)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server(production):
    gateway = GatewayServer(production / "production.ini", prefix="", processes=1, threads=6).start()
    yield gateway
    gateway.stop()
    gateway.cleanup()


@pytest.fixture
def names():
    token = uuid.uuid4().hex[:8]
    made = {
        "score_updates": f"t.readme.{token}.scores",
        "notify.patient.add": f"t.readme.{token}.patient",
        "api": f"t.readme.{token}.api",
    }
    yield made
    amqp.delete(
        exchanges=[made["score_updates"], made["notify.patient.add"], made["api"]],
        queues=[f"{made['notify.patient.add']}.scheduling"],
    )


def rewrites(server, production, names):
    """What the tour says -> what it means on this machine; each must occur in the tour."""
    return {
        "http://localhost:8080": server.url,
        "var/api-keys": str(production / "var" / "api-keys"),
        "/broadcast/score_updates": f"/broadcast/{names['score_updates']}",
        "notify.patient.add": names["notify.patient.add"],
        "/rpc/api/": f"/rpc/{names['api']}/",
        RESPONDER: f"{RESPONDER} --exchange {names['api']}",
        '"exchange":"score_updates"': f'"exchange":"{names["score_updates"]}"',
    }


def rewrite(text, table):
    for said, meant in table.items():
        text = text.replace(said, meant)
    return text


def bash(command, environment):
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + command],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def status_line(output):
    return re.search(r"^HTTP/1\.1 (\d{3})", output, flags=re.MULTILINE)[1]


def check_output(output, expected, table):
    language, text = expected
    text = rewrite(text, table)
    if language == "text":
        assert output == text, output
        return
    assert status_line(output) == status_line(text)
    shown = text.split("\n\n", 1)[1].strip() if "\n\n" in text else ""
    if shown:
        body = json.loads(output.replace("\r\n", "\n").split("\n\n", 1)[1])
        for key, value in json.loads(shown).items():
            assert key in body
            if key != "message_id":  # a new UUID every time
                assert body[key] == value, (key, body)


def start_in_background(command, environment):
    process = subprocess.Popen(
        ["bash", "-c", "exec " + command], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    assert ready and process.stdout.readline().strip() == "ready", command
    return process


def test_every_command_of_the_tour_runs_as_written(server, production, names):
    table = rewrites(server, production, names)
    said = "\n".join(text for _language, text in tour())
    for phrase in table:
        assert phrase in said, f"the tour no longer says {phrase!r}: update REWRITES"
    environment = {key: value for key, value in os.environ.items() if key != "HUTCH_INI"}
    background = []
    last_call = None
    try:
        for command, expected in steps():
            command = rewrite(command, table)
            assignment = re.match(r"^(\w+)=", command)
            if assignment:
                name = assignment[1]
                environment[name] = bash(f'{command}\nprintf %s "${name}"', environment)
                assert environment[name], f"{command} gave an empty {name}"
                continue
            if command.startswith(RESPONDER):
                background.append(start_in_background(command, environment))
                continue
            output = bash(command, environment)
            if expected is not None:
                check_output(output, expected, table)
            if "/rpc/" in command:
                last_call = command
        assert len(background) == 1 and last_call is not None, "the tour lost its responder or its call"
    finally:
        for process in background:
            process.terminate()
            process.wait(timeout=WAIT)

    # "Stop the responder, and the same call answers 503 no_responder at once": once its
    # auto-delete queue and exchange are gone (the broker removes them when it disconnects).
    deadline = time.monotonic() + WAIT
    while amqp.exchange_exists(names["api"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    output = bash(last_call, environment)
    assert status_line(output) == "503"
    assert json.loads(output.replace("\r\n", "\n").split("\n\n", 1)[1])["error"] == "no_responder"


def test_the_tours_pages_answer(server, production):
    """The pages the tour sends a browser to: the dashboard (its login form) and the reference."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    links = re.findall(r"<http://localhost:8080(/[^>]*)>", text[start : text.index("\n## ", start + 1)])
    assert {"/dashboard/score_updates", "/reference"} <= set(links)
    for path in links:
        answer = requests.get(server.url + path, headers={"Accept": "text/html"}, timeout=10)
        assert answer.status_code == 200, (path, answer.status_code)
        assert answer.headers["Content-Type"].startswith("text/html")
