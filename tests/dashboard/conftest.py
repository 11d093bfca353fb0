"""Fixtures of the dashboard's tests: the in-process stack for WebTest, gateways under
mod_wsgi-express for the stream and browser tests, API keys, and exchange clean-up."""

import base64
import contextlib
import pathlib
import shutil
import tempfile
import uuid

import pytest
import webtest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from harness import amqp
from harness.server import GatewayServer
from hutch.settings import parse_settings
from hutch.web.app import make_app

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PREFIX = "/gateway"
KEYS = {  # name -> (secret, permissions), as in stream.ini
    "viewer": ("dashboard-viewer-key-0123456789", "watch:* broadcast:*"),
    "watcher": ("dashboard-watcher-key-0123456789", "watch:t.*"),
    "publisher": ("dashboard-publisher-key-0123456789", "broadcast:*"),
}


CHROMIUM = "/usr/bin/chromium"  # Debian's chromium and chromium-driver (bin/setup installs them)
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_WAIT = 30


@contextlib.contextmanager
def chromium(width=1000, browser_log=False):
    """Headless Chromium driven by chromedriver, in a profile of its own that goes with it;
    ``browser_log`` keeps the page's console and CSP messages for the test to read."""
    profile = tempfile.mkdtemp(prefix="hutch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        f"--window-size={width},1000",
    ):
        options.add_argument(argument)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(BROWSER_WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def basic(name):
    token = base64.b64encode(f"{name}:{KEYS[name][0]}".encode()).decode()
    return f"Basic {token}"


def bearer(name):
    return f"Bearer {KEYS[name][0]}"


def stack_settings(**overrides):
    raw = {
        "apps_directory": str(ROOT / "apps"),
        "templates_directory": str(ROOT / "templates"),
        "amqp_url": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "session.secret": "dashboard-tests-secret-0123456789abcdef",
        "max_body_bytes": "4096",
        "events_buffer": "5",
        "events_heartbeat": "0.2",
        "events_max_lifetime": "5",
        "events_linger": "0.3",
        "auth": "keys",
    }
    for name, (secret, permissions) in KEYS.items():
        raw[f"auth.key.{name}"] = secret
        raw[f"auth.permissions.{name}"] = permissions
    raw.update(overrides)
    return parse_settings(raw)


@pytest.fixture(scope="module")
def stack():
    """The whole WSGI stack in this process, against the real RabbitMQ."""
    app = make_app(stack_settings())
    yield app
    app.gateway.broker.close()


@pytest.fixture
def make_stack():
    """Stacks with other settings (e.g. a stream limit); each closed after the test."""
    made = []

    def build(**overrides):
        app = make_app(stack_settings(**overrides))
        made.append(app)
        return app

    yield build
    for app in made:
        app.gateway.broker.close()


def browser_client(app, key="viewer"):
    """A WebTest client as a browser sends it: mounted at /gateway, logged in with HTTP Basic."""
    environ = {"SCRIPT_NAME": PREFIX, "HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = basic(key)
    return webtest.TestApp(app, lint=True, extra_environ=environ)


@pytest.fixture
def client(stack):
    return browser_client(stack)


def delete_with_history(names):
    """Delete the exchanges and their history streams (an exchange that keeps one never auto-deletes)."""
    amqp.delete(exchanges=names)


@pytest.fixture
def exchange():
    """A fresh live-only exchange name; the exchange is deleted after the test whoever declared it."""
    name = f"t.dash.{uuid.uuid4().hex[:8]}"
    yield name
    delete_with_history([name])


@pytest.fixture
def history_exchange():
    """A fresh exchange name that keeps history (``events_history = t.dash.h.*``); deleted after."""
    name = f"t.dash.h.{uuid.uuid4().hex[:8]}"
    yield name
    delete_with_history([name])


@pytest.fixture
def exchanges():
    """A factory of fresh exchange names (``history=True``: one that keeps history), all deleted after."""
    names = []

    def make(history=False):
        names.append(f"t.dash.{'h.' if history else ''}{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    delete_with_history(names)


def start_server(ini, processes=1, threads=6, event_processes=2):
    extra = ["--events-processes", str(event_processes)]
    server = GatewayServer(HERE / ini, prefix=PREFIX, processes=processes, threads=threads, extra_args=extra)
    return server.start()


@pytest.fixture(scope="module")
def stream_server():
    """``hutch serve``: one mod_wsgi process and two event servers on one port, for the stream tests."""
    server = start_server("stream.ini")
    yield server
    server.stop()
    server.cleanup()
