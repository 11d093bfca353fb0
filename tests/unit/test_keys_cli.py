"""``hutch keys add/list/revoke``, ``hutch --version`` and the help texts."""

import concurrent.futures
import hashlib
import os
import pathlib
import stat
import subprocess
import sys

import pytest

from hutch import __version__
from hutch.serve.cli import main
from hutch.settings import parse_settings

VENV_BIN = pathlib.Path(sys.executable).parent

INI = """\
[app:main]
use = egg:hutch
session.secret = keys-cli-tests-secret-0123456789abcdef
auth = keys
auth.key_file = %(here)s/var/api-keys
auth.key.inikey = ini-secret-0123456789abc
auth.permissions.inikey = broadcast:*
"""


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "gateway.ini"
    path.write_text(INI)
    return path


def run(capsys, *argv):
    """Run ``hutch ...`` in this process: (exit status, stdout, stderr)."""
    try:
        main(list(argv))
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def policy(ini):
    """The policy of the key file alone, as a gateway reads it."""
    raw = {"session.secret": "k" * 32, "auth": "keys", "auth.key_file": str(ini.parent / "var" / "api-keys")}
    return parse_settings(raw).auth


def test_add_prints_only_the_secret_and_stores_only_its_digest(capsys, ini):
    status, out, err = run(capsys, "keys", "add", "--ini", str(ini), "ops", "metrics", "notify:patient.*")
    assert status == 0, err
    secret = out.strip()
    assert out == secret + "\n" and len(secret) >= 32
    text = (ini.parent / "var" / "api-keys").read_text()
    assert secret not in text
    assert f"ops sha256:{hashlib.sha256(secret.encode()).hexdigest()} metrics notify:patient.*" in text
    assert stat.S_IMODE(os.stat(ini.parent / "var" / "api-keys").st_mode) == 0o600
    key = policy(ini).authenticate(f"Bearer {secret}")
    assert key.name == "ops"
    assert key.allows("metrics", "") and key.allows("notify", "patient.x") and not key.allows("rpc", "a/b")


def test_list_shows_names_and_permissions_never_secrets(capsys, ini):
    run(capsys, "keys", "add", "--ini", str(ini), "ops", "metrics")
    status, out, _err = run(capsys, "keys", "list", "--ini", str(ini))
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["NAME", "KEPT", "IN", "PERMISSIONS"]
    assert ["inikey", "ini", "(gateway.ini)", "broadcast:*"] in lines
    assert ["ops", "key", "file", "(digest)", "metrics"] in lines
    assert "ini-secret" not in out and "sha256" not in out


def test_revoke_removes_the_key_and_keeps_the_others(capsys, ini):
    key_file = ini.parent / "var" / "api-keys"
    key_file.parent.mkdir()
    key_file.write_text("# by hand\nlegacy legacy-secret-0123456789 watch:*\n")
    key_file.chmod(0o600)
    _, out, _ = run(capsys, "keys", "add", "--ini", str(ini), "ops", "*")
    secret = out.strip()
    assert {key.name for key in policy(ini).keys} == {"legacy", "ops"}
    status, _, err = run(capsys, "keys", "revoke", "--ini", str(ini), "ops")
    assert status == 0, err
    assert policy(ini).authenticate(f"Bearer {secret}") is None
    assert key_file.read_text() == "# by hand\nlegacy legacy-secret-0123456789 watch:*\n"
    assert policy(ini).authenticate("Bearer legacy-secret-0123456789").name == "legacy"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "bad/name", "*"], "key name"),
        (["add", "ops", "publish:x"], "permission 'publish:x'"),
        (["add", "ops", "metrics:x"], "no resource"),
        (["add", "inikey", "*"], "already defined in the ini"),
        (["revoke", "nobody"], "no key 'nobody'"),
        (["revoke", "inikey"], "remove auth.key.inikey there"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(capsys, ini, argv, message):
    run(capsys, "keys", "add", "--ini", str(ini), "keep", "watch:*")
    before = (ini.parent / "var" / "api-keys").read_text()
    status, out, err = run(capsys, "keys", argv[0], "--ini", str(ini), *argv[1:])
    assert status == 1
    assert out == ""
    assert message in err and "Traceback" not in err
    assert (ini.parent / "var" / "api-keys").read_text() == before


def test_adding_an_existing_name_is_refused(capsys, ini):
    run(capsys, "keys", "add", "--ini", str(ini), "ops", "*")
    status, _, err = run(capsys, "keys", "add", "--ini", str(ini), "ops", "metrics")
    assert status == 1 and "exists" in err


def test_an_ini_without_a_key_file_is_refused(capsys, tmp_path):
    ini = tmp_path / "nokeys.ini"
    ini.write_text("[app:main]\nuse = egg:hutch\nauth = off\n")
    status, _, err = run(capsys, "keys", "list", "--ini", str(ini))
    assert status == 1 and "auth.key_file" in err


def test_the_ini_defaults_to_hutch_ini(capsys, ini, monkeypatch):
    monkeypatch.setenv("HUTCH_INI", str(ini))
    _, out, _ = run(capsys, "keys", "add", "ops", "metrics")
    assert policy(ini).authenticate(f"Bearer {out.strip()}").name == "ops"


def test_concurrent_adds_lose_nothing(ini):
    """Each command locks the file's folder: eight at once all land."""
    command = [str(VENV_BIN / "hutch"), "keys", "add", "--ini", str(ini)]

    def add(number):
        return subprocess.run([*command, f"k{number}", "watch:*"], capture_output=True, text=True, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(add, range(8)))
    assert [result.returncode for result in results] == [0] * 8, [result.stderr for result in results]
    keys = policy(ini)
    for number, result in enumerate(results):
        assert keys.authenticate(f"Bearer {result.stdout.strip()}").name == f"k{number}"


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.strip() == f"hutch {__version__}"


def test_help_is_plain_text_with_the_defaults(capsys):
    _, top, _ = run(capsys, "--help")
    assert "serve" in top and "keys" in top and "--version" in top
    _, serve, _ = run(capsys, "serve", "--help")
    for default in ("localhost", "8080", "20", "2", "www-data", "$HUTCH_INI"):
        assert f"(default: {default}" in serve, default
    assert "``" not in top + serve and "None" not in serve
    _, add, _ = run(capsys, "keys", "add", "--help")
    assert "PERMISSION" in add and "metrics" in add and "(default: $HUTCH_INI" in add
