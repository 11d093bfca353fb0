"""The settings table: defaults, conversions, and what the ini may not change."""

import os
import stat

import pytest

from hutch.auth.session_store import RedisSessionStore, StrictSession
from hutch.settings import ConfigurationError, parse_settings

SECRET = "s" * 32


def parse(**raw):
    raw.setdefault("session.secret", SECRET)
    raw.setdefault("auth", "off")
    return parse_settings(raw, here="/srv/hutch")


def test_defaults():
    settings = parse()
    assert settings.amqp_url == ("amqp://guest:guest@localhost:5672/%2F",)
    assert settings.notify_queue_type == "classic"
    assert settings.publisher == "direct"
    assert settings.development is False
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.rpc_timeout == 5.0
    assert settings.rpc_max_timeout == 30.0
    assert settings.retry_after == 5
    assert settings.apps_directory == "/srv/hutch/apps"
    assert settings.templates_directory == "/srv/hutch/templates"


def test_strings_are_converted():
    settings = parse(
        development="true",
        max_body_bytes="2048",
        rpc_timeout="1.5",
        rpc_max_timeout="9",
        heartbeat="0",
        retry_after="7",
        apps_directory="/elsewhere/apps",
    )
    assert settings.development is True
    assert settings.max_body_bytes == 2048
    assert settings.rpc_timeout == 1.5
    assert settings.rpc_max_timeout == 9.0
    assert settings.heartbeat == 0
    assert settings.retry_after == 7
    assert settings.apps_directory == "/elsewhere/apps"


def test_settings_are_frozen():
    settings = parse()
    with pytest.raises(AttributeError):
        settings.max_body_bytes = 1


@pytest.mark.parametrize("key", ["max_body_byte", "debug", "beaker.session.type", "session_secret"])
def test_unknown_key_is_rejected(key):
    with pytest.raises(ConfigurationError, match="unknown setting"):
        parse(**{key: "1"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_body_bytes", "lots"),
        ("max_body_bytes", "0"),
        ("max_body_bytes", "-1"),
        ("max_body_bytes", "1.5"),
        ("rpc_timeout", "0"),
        ("rpc_timeout", "-2"),
        ("rpc_timeout", "soon"),
        ("retry_after", "0"),
        ("heartbeat", "often"),
        ("development", "maybe"),
        ("events_buffer", "0"),
        ("amqp_url", ""),
        ("amqp_url", "   "),
        ("amqp_url", "amqp://a:5672/%2F http://b:5672/"),
        ("amqp_url", "localhost"),
        ("notify_queue_type", "stream"),
        ("notify_queue_type", "Quorum"),
        ("publisher", "fast"),
    ],
)
def test_bad_value_is_rejected_naming_the_key(key, value):
    with pytest.raises(ConfigurationError, match=key):
        parse(**{key: value})


def test_amqp_url_names_one_or_more_nodes_in_order():
    urls = "amqp://u:p@node1:5672/%2F\n    amqp://u:p@node2:5673/%2F  amqps://u:p@node3/%2F"
    assert parse(amqp_url=urls).amqp_url == (
        "amqp://u:p@node1:5672/%2F",
        "amqp://u:p@node2:5673/%2F",
        "amqps://u:p@node3/%2F",
    )


def test_a_bad_amqp_url_is_named_without_its_password():
    with pytest.raises(ConfigurationError, match="amqp_url") as refused:
        parse(amqp_url="amqp://u:p@node1/%2F ftp://user:s3cret@node2/")
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_notify_queue_type(queue_type):
    assert parse(notify_queue_type=queue_type).notify_queue_type == queue_type


@pytest.mark.parametrize("publisher", ["direct", "pika"])
def test_publisher(publisher):
    assert parse(publisher=publisher).publisher == publisher


def test_rpc_timeout_may_not_exceed_its_cap():
    with pytest.raises(ConfigurationError, match="rpc_max_timeout"):
        parse(rpc_timeout="10", rpc_max_timeout="5")


def test_session_defaults_are_safe():
    session = parse().session
    assert session["session.type"] == "cookie"
    assert session["session.data_serializer"] == "json"
    assert session["session.httponly"] is True
    assert session["session.samesite"] == "Lax"
    for key in ("session.secret", "session.validate_key", "session.encrypt_key"):
        assert session[key] == SECRET


def test_ini_cannot_weaken_serializer_or_httponly():
    session = parse(**{"session.data_serializer": "pickle", "session.httponly": "false"}).session
    assert session["session.data_serializer"] == "json"
    assert session["session.httponly"] is True


def test_ini_may_tune_other_session_options():
    session = parse(**{"session.secure": "true", "session.key": "other", "session.timeout": "60"}).session
    assert session["session.secure"] == "true"
    assert session["session.key"] == "other"
    assert session["session.timeout"] == "60"


@pytest.mark.parametrize("backend", ["file", "dbm", "memory", "ext:memcached", "ext:redisnm"])
def test_session_backends_other_than_cookie_and_redis_are_refused(backend):
    """file and dbm build paths from the session id; memory is one process's; the others are untested."""
    with pytest.raises(ConfigurationError, match=r"session\.type"):
        parse(**{"session.type": backend})


@pytest.mark.parametrize("url", [None, "", "http://127.0.0.1:6379/1", "127.0.0.1:6379"])
def test_redis_sessions_need_a_redis_url(url):
    with pytest.raises(ConfigurationError, match=r"session\.url"):
        parse(**{"session.type": "ext:redis", **({"session.url": url} if url is not None else {})})


def test_redis_sessions_use_the_gateways_store_and_retry_after():
    session = parse(
        **{"session.type": "ext:redis", "session.url": "redis://127.0.0.1:6379/1"}, retry_after="9"
    ).session
    assert session["session.namespace_class"] is RedisSessionStore
    assert session["session.session_class"] is StrictSession
    assert session["session.retry_after"] == 9
    assert session["session.data_serializer"] == "json"


def test_a_secret_is_required():
    with pytest.raises(ConfigurationError, match=r"session\.secret"):
        parse_settings({"auth": "off"}, here=".")


def test_a_short_secret_is_rejected():
    with pytest.raises(ConfigurationError, match="32"):
        parse(**{"session.secret": "s" * 31})


def test_secret_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "var" / "session.secret"
    first = parse_settings({"session_secret_file": str(path), "auth": "off"}).session["session.secret"]
    assert len(first) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == first
    second = parse_settings({"session_secret_file": str(path), "auth": "off"}).session["session.secret"]
    assert second == first


def test_secret_file_too_short_is_rejected(tmp_path):
    path = tmp_path / "session.secret"
    path.write_text("short\n")
    with pytest.raises(ConfigurationError, match="32"):
        parse_settings({"session_secret_file": str(path), "auth": "off"})


def test_literal_secret_wins_over_the_file(tmp_path):
    path = tmp_path / "session.secret"
    session = parse_settings(
        {"session_secret_file": str(path), "session.secret": SECRET, "auth": "off"}
    ).session
    assert session["session.secret"] == SECRET
    assert not path.exists()


def test_processes_starting_together_share_one_secret(tmp_path, monkeypatch):
    path = tmp_path / "session.secret"
    raw = {"session_secret_file": str(path), "auth": "off"}
    other = []
    real_fdopen = os.fdopen

    def another_process_starts_meanwhile(*args, **kwargs):
        if not other:
            other.append(None)
            other[0] = parse_settings(raw).session["session.secret"]
        return real_fdopen(*args, **kwargs)

    monkeypatch.setattr(os, "fdopen", another_process_starts_meanwhile)
    mine = parse_settings(raw).session["session.secret"]
    assert mine == other[0]
    assert path.read_text().strip() == mine


def test_idempotency_is_off_by_default_and_remembers_a_day():
    settings = parse()
    assert settings.idempotency_url == ""
    assert settings.idempotency_ttl == 86400


def test_idempotency_settings_are_converted():
    settings = parse(idempotency_url=" redis://127.0.0.1:6379/3 ", idempotency_ttl="60")
    assert settings.idempotency_url == "redis://127.0.0.1:6379/3"
    assert settings.idempotency_ttl == 60
    assert "6379" not in repr(settings)  # the URL may carry a password


@pytest.mark.parametrize(
    ("key", "value"),
    [("idempotency_url", "http://127.0.0.1:6379/0"), ("idempotency_ttl", "0"), ("idempotency_ttl", "1d")],
)
def test_bad_idempotency_setting_is_rejected(key, value):
    with pytest.raises(ConfigurationError, match=key):
        parse(**{key: value})
