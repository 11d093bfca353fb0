"""The running gateway's keys follow the key file: looked at once a second, never per request."""

import logging
import os

import pytest

import hutch.auth.live_keys
from hutch.auth.keyfile import add_key, revoke_key
from hutch.auth.live_keys import CHECK_INTERVAL, LivePolicy


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds=CHECK_INTERVAL):
        self.now += seconds


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "var" / "api-keys"
    path.parent.mkdir()
    path.write_text("first first-secret-0123456789 *\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def clock():
    return Clock()


def names(policy):
    return {key.name for key in policy.keys}


def test_an_added_key_counts_after_the_next_look(key_file, clock):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    secret = add_key(str(key_file), "ops", ["metrics"])
    assert policy.authenticate(f"Bearer {secret}") is None  # not looked at yet
    clock.advance()
    assert policy.authenticate(f"Bearer {secret}").name == "ops"


def test_a_revoked_key_stops_working_after_the_next_look(key_file, clock):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    revoke_key(str(key_file), "first")
    clock.advance()
    assert policy.authenticate("Bearer first-secret-0123456789") is None
    assert names(policy) == set()


def test_the_file_is_not_read_between_looks(key_file, clock, monkeypatch):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    looks = []
    real = hutch.auth.live_keys.file_signature
    monkeypatch.setattr(hutch.auth.live_keys, "file_signature", lambda path: looks.append(path) or real(path))
    for _ in range(1000):
        assert policy.authenticate("Bearer first-secret-0123456789").name == "first"
    assert looks == []
    clock.advance()
    for _ in range(1000):
        policy.authenticate("Bearer first-secret-0123456789")
    assert len(looks) == 1


def test_a_broken_edit_keeps_the_last_good_keys(key_file, clock, caplog):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    key_file.write_text("first first-secret-0123456789 *\nbroken line\n")
    clock.advance()
    with caplog.at_level(logging.ERROR, logger="hutch.auth.live_keys"):
        assert policy.authenticate("Bearer first-secret-0123456789").name == "first"
    assert "line 2" in caplog.text
    key_file.write_text("second second-secret-0123456789 watch:*\n")
    clock.advance()
    assert names(policy) == {"second"}


def test_a_file_open_to_others_or_gone_keeps_the_last_good_keys(key_file, clock):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    key_file.chmod(0o644)
    os.utime(key_file, ns=(1, 1))
    clock.advance()
    assert names(policy) == {"first"}
    key_file.unlink()
    clock.advance()
    assert names(policy) == {"first"}


def test_ini_keys_stay_and_may_not_be_repeated(key_file, clock, caplog):
    from hutch.auth.policy import make_key

    ini_key = make_key("inikey", "ini-secret-0123456789abc", "broadcast:*")
    policy = LivePolicy("keys", (ini_key,), str(key_file), clock=clock)
    assert names(policy) == {"inikey", "first"}
    key_file.write_text("inikey other-secret-0123456789 *\n")
    clock.advance()
    with caplog.at_level(logging.ERROR, logger="hutch.auth.live_keys"):
        assert names(policy) == {"inikey", "first"}
    assert "defined twice" in caplog.text


def test_the_policy_cannot_be_changed_from_outside_and_shows_no_secret(key_file, clock):
    policy = LivePolicy("keys", (), str(key_file), clock=clock)
    with pytest.raises(AttributeError):
        policy.keys = ()
    assert "first-secret" not in repr(policy)
