"""The typed settings table, parsed once by the app factory.

Modelled on waitress' ``adjustments.py``: every key the ini may carry is
declared here with its converter and default, and an unknown key is an error
at start-up rather than a silently ignored typo.  Keys starting with
``session.`` are handed to Beaker after the gateway's safe defaults.  ``auth``
(``keys`` or ``off``) is required, so turning authentication off is always a
decision written in the ini; ``auth.*`` keys become the ``hutch.auth.policy`` policy.
"""

import dataclasses
import os
import secrets

from paste.deploy.converters import asbool

from hutch.amqp.history import HistoryPolicy, compile_patterns, max_age
from hutch.auth.live_keys import parse_auth
from hutch.auth.policy import AuthPolicy
from hutch.auth.session_store import backend_options
from hutch.files import create_once


class ConfigurationError(ValueError):
    """The ini carries an unknown key or a value of the wrong kind."""


def positive_float(value):
    number = float(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not > 0")
    return number


def amqp_urls(value):
    """One or more whitespace-separated AMQP URLs (the nodes of one cluster), in the ini's order."""
    urls = tuple(value.split())
    if not urls:
        raise ValueError("name at least one amqp:// or amqps:// URL")
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise ValueError(f"{url.split('@')[-1]!r} is not an amqp:// or amqps:// URL")
    return urls


def one_of(*choices):
    def convert(value):
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return convert


def positive_int(value):
    number = int(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not > 0")
    return number


def redis_url(value):
    """``redis://`` (or ``rediss://``, ``unix://``) URL of the idempotency store; empty turns it off."""
    value = value.strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"{value!r} is not a redis://host:port/db URL")
    return value


def url_prefixes(value):
    """Whitespace-separated ``http://`` or ``https://`` URL prefixes (``push_allow``)."""
    prefixes = tuple(value.split())
    for prefix in prefixes:
        if not prefix.startswith(("http://", "https://")):
            raise ValueError(f"{prefix!r} is not an http:// or https:// URL prefix")
    return prefixes


@dataclasses.dataclass(frozen=True)
class Settings:
    amqp_url: tuple = dataclasses.field(default=("amqp://guest:guest@localhost:5672/%2F",), repr=False)
    development: bool = False
    max_body_bytes: int = 1024 * 1024
    rpc_timeout: float = 5.0
    rpc_max_timeout: float = 30.0
    publish_timeout: float = 5.0
    connect_timeout: float = 5.0
    heartbeat: int = 30
    reconnect_max_delay: float = 10.0
    retry_after: int = 5
    notify_queue_type: str = "classic"
    apps_directory: str = ""
    templates_directory: str = ""
    events_buffer: int = 200
    events_heartbeat: float = 15.0
    events_max_lifetime: float = 300.0
    events_linger: float = 5.0
    events_max_body: int = 16 * 1024
    events_max_streams: int = 0
    idempotency_url: str = dataclasses.field(default="", repr=False)  # may carry a password
    idempotency_ttl: int = 86400
    access_log: bool = False  # one JSON line per request on the hutch.access logger
    events_max_pending: int = 256 * 1024
    events_ticket_ttl: float = 60.0
    publisher: str = "direct"  # broadcast and notify: "direct" (a connection of their own) or "pika"
    max_batch_messages: int = 1000  # bulk publishing: messages in one POST .../batch
    max_batch_bytes: int = 16 * 1024 * 1024  # ... and its body's bytes
    history: HistoryPolicy = dataclasses.field(default_factory=HistoryPolicy)  # the events_history* keys
    session: dict = dataclasses.field(default_factory=dict, repr=False)  # holds the secrets
    auth: AuthPolicy = dataclasses.field(default_factory=AuthPolicy)  # no key: protected routes answer 401
    # Push delivery (hutch.delivery): the subscription store, the URLs it may call, the secrets' sealing key.
    push_store: str = dataclasses.field(default="", repr=False)  # redis:// URL; empty: no push delivery
    push_allow: tuple = ("https://",)
    push_key_file: str = ""  # empty: the sealing key is derived from the session secret


CONVERTERS = {
    "amqp_url": amqp_urls,
    "development": asbool,
    "max_body_bytes": positive_int,
    "rpc_timeout": positive_float,
    "rpc_max_timeout": positive_float,
    "publish_timeout": positive_float,
    "connect_timeout": positive_float,
    "heartbeat": int,
    "reconnect_max_delay": positive_float,
    "retry_after": positive_int,
    "notify_queue_type": one_of("quorum", "classic"),
    "apps_directory": str,
    "templates_directory": str,
    "events_buffer": positive_int,
    "events_heartbeat": positive_float,
    "events_max_lifetime": positive_float,
    "events_linger": positive_float,
    "events_max_body": positive_int,
    "events_max_streams": int,
    "idempotency_url": redis_url,
    "idempotency_ttl": positive_int,
    "access_log": asbool,
    "events_max_pending": positive_int,
    "events_ticket_ttl": positive_float,
    "publisher": one_of("direct", "pika"),
    "max_batch_messages": positive_int,
    "max_batch_bytes": positive_int,
    "push_store": redis_url,
    "push_allow": url_prefixes,
    "push_key_file": str,
}
# events_history* become one HistoryPolicy (hutch.amqp.history).
HISTORY_CONVERTERS = {
    "events_history": ("patterns", compile_patterns),
    "events_history_count": ("count", int),
    "events_history_max_age": ("max_age", max_age),
    "events_history_max_bytes": ("max_bytes", positive_int),
    "events_history_segment_bytes": ("segment_bytes", positive_int),
}

# Beaker options the gateway insists on; the ini may override the others.
SESSION_DEFAULTS = {
    "session.type": "cookie",
    "session.key": "hutch_session",
    "session.httponly": True,
    "session.samesite": "Lax",
    "session.data_serializer": "json",
    "session.timeout": 3600,
    "session.cookie_path": "/",
}
SESSION_FIXED = {"session.data_serializer": "json", "session.httponly": True}
SESSION_SECRET_KEYS = ("session.secret", "session.validate_key", "session.encrypt_key")


def parse_settings(raw, here="."):
    """Turn the ini's ``[app:...]`` strings into ``Settings``; reject unknown keys."""
    values = {}
    session = dict(SESSION_DEFAULTS)
    secret_file = None
    auth = {}
    history = {}
    for key, text in raw.items():
        if key.startswith("session."):
            session[key] = text
        elif key == "auth" or key.startswith("auth."):
            auth[key] = text
        elif key == "session_secret_file":
            secret_file = text
        elif key in CONVERTERS or key in HISTORY_CONVERTERS:
            field, convert = HISTORY_CONVERTERS.get(key, (None, CONVERTERS.get(key)))
            try:
                value = convert(text)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"setting {key}: {exc}") from None
            if field is None:
                values[key] = value
            else:
                history[field] = value
        else:
            known = [*CONVERTERS, *HISTORY_CONVERTERS, "session_secret_file", "session.*", "auth", "auth.*"]
            known = ", ".join(sorted(known))
            raise ConfigurationError(f"unknown setting {key!r}; known: {known}")
    values.setdefault("apps_directory", os.path.join(here, "apps"))
    values.setdefault("templates_directory", os.path.join(here, "templates"))
    session.update(SESSION_FIXED)
    _install_session_secret(session, secret_file)
    try:
        values["session"] = backend_options(session, values.get("retry_after", Settings.retry_after))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    values["auth"] = _auth_policy(auth)
    if history.get("count", 0) < 0:
        raise ConfigurationError("setting events_history_count: must be >= 0")
    values["history"] = HistoryPolicy(**history)
    settings = Settings(**values)
    if settings.rpc_timeout > settings.rpc_max_timeout:
        raise ConfigurationError("rpc_timeout must not exceed rpc_max_timeout")
    return settings


def _auth_policy(raw):
    """``auth`` must be set explicitly; ``auth.key_file``, ``auth.key.*``/``auth.permissions.*`` add keys."""
    if "auth" not in raw:
        raise ConfigurationError(
            "set auth explicitly: 'auth = keys' (API keys from auth.key.<name>/auth.permissions.<name>"
            " or auth.key_file) or 'auth = off' (development only)"
        )
    entries = {key.removeprefix("auth."): text for key, text in raw.items() if key != "auth"}
    key_file = entries.pop("key_file", None)
    try:
        return parse_auth(raw["auth"].strip(), entries, key_file=key_file)
    except ValueError as exc:
        raise ConfigurationError(f"auth: {exc}") from None


def _install_session_secret(session, secret_file):
    """Give Beaker its signing and encryption keys.

    A literal ``session.secret`` wins; else the keys come from
    ``session_secret_file``, which is created (mode 0600) with a random
    secret the first time, so every process of a host shares it.
    """
    secret = session.get("session.secret")
    if not secret and secret_file:
        secret = _read_or_create_secret(secret_file)
    if not secret:
        raise ConfigurationError("set session.secret or session_secret_file")
    if len(secret) < 32:
        raise ConfigurationError("the session secret must be at least 32 characters")
    for key in SESSION_SECRET_KEYS:
        session.setdefault(key, secret)


def _read_or_create_secret(path):
    """Read the secret; create it first if missing (``create_once``: whole, and the first one wins)."""
    if not os.path.exists(path):
        create_once(path, secrets.token_urlsafe(48) + "\n")
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()
