"""The gateway stack built from settings, with API keys on, against the real RabbitMQ."""

import base64
import pathlib

import pytest

from hutch.settings import parse_settings
from hutch.web.app import make_app

from .wsgi import Counter

ROOT = pathlib.Path(__file__).resolve().parents[2]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SESSION_SECRET = "security-tests-session-secret-0123456789abcdef"

# name -> (secret, permissions); the patterns match the names unique_name() makes: t.<prefix>.<hex>
KEYS = {
    "admin": ("admin-secret-key-0123456789abcdef", "*"),
    "patients": ("patients-secret-key-0123456789ab", "notify:t.patient.* broadcast:t.score_*"),
    "registrar": ("registrar-secret-key-0123456789a", "register:t.patient.*"),
    "api": ("api-client-secret-key-0123456789", "rpc:t.api.*/add_*"),
    "watcher": ("watcher-secret-key-0123456789abc", "watch:*"),
}


def bearer(name):
    return f"Bearer {KEYS[name][0]}"


def basic(name, secret=None):
    secret = KEYS[name][0] if secret is None else secret
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode("ascii")


def raw_settings(**overrides):
    """The ini's [app:main] strings for a production-like gateway (development off, keys on)."""
    raw = {
        "amqp_url": AMQP_URL,
        "apps_directory": str(ROOT / "apps"),
        "templates_directory": str(ROOT / "templates"),
        "session.secret": SESSION_SECRET,
        "rpc_timeout": "2",
        "rpc_max_timeout": "5",
        "auth": "keys",
    }
    for name, (secret, permissions) in KEYS.items():
        raw[f"auth.key.{name}"] = secret
        raw[f"auth.permissions.{name}"] = permissions
    raw.update(overrides)
    return {key: value for key, value in raw.items() if value is not None}


@pytest.fixture(scope="session")
def build_stack():
    """Build full stacks from settings; every broker they opened is closed at the end."""
    stacks = []

    def build(**overrides):
        stack = make_app(parse_settings(raw_settings(**overrides), here=str(ROOT)))
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.gateway.broker.close()


@pytest.fixture(scope="session")
def stack(build_stack):
    """The production-like stack most tests share (one broker connection, as one process has)."""
    return build_stack()


def pytest_terminal_summary(terminalreporter):
    if Counter.requests:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(Counter.statuses.items()))
        terminalreporter.write_line(
            f"tests/security: {Counter.requests} raw WSGI requests, of which {Counter.fuzzed} fuzzed "
            f"({statuses}); {Counter.published} published messages checked against the contract"
        )
