"""Real HTTP receivers and real delivery processes for the push delivery tests.

``Receiver`` is an aiohttp server on a loopback port, in a thread of its
own, that records every POST and answers as its ``behaviour`` says; it can
go down (refuse connections) and come back on the same port.  Every
request is checked with the Standard Webhooks reference library against
the secrets the test gives it.  ``DeliveryProcess`` runs ``hutch delivery``
as a real process (so tests may SIGKILL it), on an ini written for it.
"""

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .process import terminate
from .server import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]
SESSION_SECRET = "push-tests-secret-0123456789abcdef0123"  # the gateway's and the delivery processes'


def wait_for(predicate, timeout=30.0, interval=0.05, what="the condition"):
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` s (a bound, not a speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Received:
    __slots__ = ("body", "headers", "status")

    def __init__(self, headers, body):
        self.headers, self.body, self.status = headers, body, None


def verifies(received, secrets):
    """Does one of ``secrets`` verify the delivery (the reference library's ``Webhook.verify``)?"""
    for secret in secrets:
        try:
            Webhook(secret).verify(received.body, received.headers, json_parse=False)
        except WebhookVerificationError:
            continue
        return True
    return False


class Receiver:
    """``behaviour(received, count)`` returns a status, ``("sleep", seconds, status)`` or
    ``("redirect", url)`` (a 307 to ``url``)."""

    def __init__(self, behaviour=None):
        self.port = free_port()
        self.behaviour = behaviour or (lambda received, count: 200)
        self.requests = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = None
        self.site = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request):
        received = Received(dict(request.headers), await request.read())
        with self.lock:
            self.requests.append(received)
            count = len(self.requests)
        answer = self.behaviour(received, count)
        headers = {}
        if isinstance(answer, tuple) and answer[0] == "redirect":
            headers["Location"] = answer[1]
            answer = 307
        elif isinstance(answer, tuple):
            _, seconds, answer = answer
            await asyncio.sleep(seconds)
        received.status = answer
        return web.Response(status=answer, text="ok" if answer < 300 else "no", headers=headers)

    def unverified(self, secrets):
        """The requests none of ``secrets`` verifies with the Standard Webhooks reference library."""
        with self.lock:
            requests = list(self.requests)
        return [received for received in requests if not verifies(received, secrets)]

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def start(self):
        if not self.thread.is_alive():
            self.thread.start()
        self.up()
        return self

    def up(self):
        async def start():
            app = web.Application()
            app.router.add_post("/hook", self.handle)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
            await self.site.start()

        self._run(start())

    def down(self):
        if self.runner is not None:
            self._run(self.runner.cleanup())
            self.runner = None

    def stop(self):
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def ok(self):
        """The requests answered 2xx."""
        with self.lock:
            return [
                received
                for received in self.requests
                if received.status is not None and received.status < 300
            ]

    def ids(self):
        return [received.headers.get("webhook-id") for received in self.ok()]


class DeliveryProcess:
    """``hutch delivery`` on its own ini; ``log`` is its stderr."""

    def __init__(
        self, amqp_url, push_store, notify_queue_type="classic", push_allow="http://127.0.0.1: https://"
    ):
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="hutch-delivery-"))
        self.ini = self.directory / "delivery.ini"
        self.ini.write_text(
            "[app:main]\nuse = egg:hutch\n"
            f"amqp_url = {amqp_url.replace('%', '%%')}\n"
            f"push_store = {push_store}\n"
            f"push_allow = {push_allow}\n"
            f"notify_queue_type = {notify_queue_type}\n"
            f"session.secret = {SESSION_SECRET}\n"
            "auth = off\nconnect_timeout = 2\nheartbeat = 5\nreconnect_max_delay = 1\n"
            "\n[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
            "[logger_root]\nlevel = INFO\nhandlers = console\n"
            "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\n"
            "formatter = generic\n"
            "[formatter_generic]\nformat = %(asctime)s %(levelname)s [%(name)s] %(message)s\n"
        )
        self.log_path = self.directory / "delivery.log"
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hutch.delivery.main", "--ini", str(self.ini)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    def kill(self):
        """SIGKILL: no goodbye, unacked messages go back to the queue."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        terminate(self.process, timeout=20)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
