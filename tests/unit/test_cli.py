"""``hutch serve``'s command line, and apache/hutch.conf: valid, and the same numbers as hutch serve."""

import os
import pathlib
import re
import resource
import runpy
import subprocess
import sys

import pytest

from hutch.inifile import read_ini
from hutch.serve import cli, plan
from hutch.serve.metrics_dir import default_server_root
from hutch.settings import Settings, parse_settings
from hutch.web.server_errors import error_documents

ROOT = pathlib.Path(__file__).resolve().parents[2]
HUTCH_CONF = ROOT / "apache" / "hutch.conf"
VENV_BIN = pathlib.Path(sys.executable).parent
DEFAULT_LIMITS = plan.ServerLimits(limit_request_body=1114112, request_timeout=60, socket_timeout=60)


def flag(command, name):
    """The value after ``name`` in a command line."""
    return command[command.index(name) + 1]


# --- serve_arguments ------------------------------------------------------------------


def test_defaults_run_the_gateway_script_in_daemon_mode():
    command = plan.serve_arguments(cli.parse(["serve"]), DEFAULT_LIMITS)

    assert command[:2] == ["start-server", str(ROOT / "gateway.wsgi")]
    assert flag(command, "--application-type") == "script"
    assert flag(command, "--host") == "localhost"
    assert flag(command, "--port") == "8080"
    assert flag(command, "--mount-point") == "/"
    assert flag(command, "--processes") == "2"
    assert flag(command, "--threads") == "20"
    assert flag(command, "--request-timeout") == "60"
    assert flag(command, "--socket-timeout") == "60"
    assert flag(command, "--queue-timeout") == "30"
    assert flag(command, "--limit-request-body") == "1114112"
    assert flag(command, "--locale") == "C.UTF-8"
    assert flag(command, "--working-directory") == str(ROOT)
    assert "--chunked-request" in command
    assert "--user" not in command and "--server-root" not in command


def test_read_timeouts_match_the_slowloris_protection():
    command = plan.serve_arguments(cli.parse(["serve"]), DEFAULT_LIMITS)
    assert flag(command, "--header-timeout") == "10"
    assert flag(command, "--header-max-timeout") == "20"
    assert flag(command, "--header-min-rate") == "500"
    assert flag(command, "--body-timeout") == "20"
    assert flag(command, "--body-min-rate") == "500"


def pairs(command, name):
    """Every value (or pair of values) after each ``name`` in a command line."""
    width = 2 if name in ("--url-alias", "--error-document") else 1
    return [tuple(command[i + 1 : i + 1 + width]) for i, word in enumerate(command) if word == name]


@pytest.mark.parametrize(("mount_point", "prefix"), [("/", ""), ("/gateway", "/gateway"), ("/a/b/", "/a/b")])
def test_trace_is_off_and_apaches_errors_are_the_contracts_json(mount_point, prefix):
    command = plan.serve_arguments(cli.parse(["serve", "--mount-point", mount_point]), DEFAULT_LIMITS)
    included = [pathlib.Path(path).read_text() for (path,) in pairs(command, "--include-file")]
    assert any("TraceEnable Off" in text for text in included)
    assert pairs(command, "--url-alias") == [(f"{prefix}/.errors", str(ROOT / "apache" / "errors"))]
    assert pairs(command, "--error-document") == [
        ("400", f"{prefix}/.errors/400.json"),
        ("405", f"{prefix}/.method-not-allowed"),
        ("408", f"{prefix}/.errors/408.json"),
        ("413", f"{prefix}/.errors/413.json"),
        ("414", f"{prefix}/.errors/414.json"),
    ]


def test_as_root_the_daemons_run_as_www_data_or_the_given_user():
    command = plan.serve_arguments(cli.parse(["serve"]), DEFAULT_LIMITS, as_root=True)
    assert (flag(command, "--user"), flag(command, "--group")) == ("www-data", "www-data")

    args = cli.parse(["serve", "--user", "hutch", "--group", "daemons"])
    command = plan.serve_arguments(args, DEFAULT_LIMITS, as_root=True)
    assert (flag(command, "--user"), flag(command, "--group")) == ("hutch", "daemons")


def test_explicit_flags_win_and_unknown_flags_go_to_mod_wsgi_express():
    argv = [
        "serve",
        "--host", "127.0.0.1",
        "--port", "9000",
        "--mount-point", "/gateway",
        "--processes", "4",
        "--threads", "5",
        "--request-timeout", "900",
        "--socket-timeout", "120",
        "--queue-timeout", "10",
        "--limit-request-body", "5000",
        "--server-root", "/tmp/hutch-x",
        "--log-level", "info",
        "--access-log",
    ]  # fmt: skip
    args = cli.parse(argv)
    command = plan.serve_arguments(args, DEFAULT_LIMITS)

    for name, value in [
        ("--host", "127.0.0.1"),
        ("--port", "9000"),
        ("--mount-point", "/gateway"),
        ("--processes", "4"),
        ("--threads", "5"),
        ("--request-timeout", "900"),
        ("--socket-timeout", "120"),
        ("--queue-timeout", "10"),
        ("--limit-request-body", "5000"),
        ("--server-root", "/tmp/hutch-x"),
    ]:
        assert flag(command, name) == value, name
    assert command[-3:] == ["--log-level", "info", "--access-log"]


def test_behind_the_front_apache_listens_on_loopback_in_the_public_addresss_server_root():
    args = cli.parse(["serve", "--host", "0.0.0.0", "--port", "8080", "--mount-point", "/gateway"])
    command = plan.serve_arguments(args, DEFAULT_LIMITS, gateway_port=9123)
    assert (flag(command, "--host"), flag(command, "--port")) == ("127.0.0.1", "9123")
    assert flag(command, "--server-root") == default_server_root("0.0.0.0", 8080)
    assert "--proxy-mount-point" not in command and "--max-clients" not in command
    own_root = cli.parse(["serve", "--server-root", "/tmp/hutch-x"])
    assert (
        flag(plan.serve_arguments(own_root, DEFAULT_LIMITS, gateway_port=1), "--server-root")
        == "/tmp/hutch-x"
    )


def test_by_default_haproxy_is_the_front_and_apache_proxies_only_its_own_connections_streams():
    args = cli.parse(["serve", "--mount-point", "/gateway", "--processes", "2", "--threads", "5"])
    assert args.front == "haproxy"
    command = plan.serve_arguments(args, DEFAULT_LIMITS, gateway_port=9124, events_port=9123)
    at = command.index("--proxy-mount-point")
    assert command[at + 1 : at + 3] == ["/gateway/events", "http://127.0.0.1:9123/events"]
    assert flag(command, "--max-clients") == str(plan.FALLBACK_PROXY_STREAMS + 2 * 5)
    assert (flag(command, "--host"), flag(command, "--port")) == ("127.0.0.1", "9124")
    assert str(plan.BEHIND_FRONT_CONF) in command  # browsers' connections are not kept alive


def test_with_front_apache_apache_proxies_the_event_servers_under_the_mount_point():
    args = cli.parse(
        ["serve", "--front", "apache", "--mount-point", "/gateway", "--processes", "2", "--threads", "5"]
    )
    command = plan.serve_arguments(args, DEFAULT_LIMITS, events_port=9123)
    at = command.index("--proxy-mount-point")
    assert command[at + 1 : at + 3] == ["/gateway/events", "http://127.0.0.1:9123/events"]
    assert flag(command, "--max-clients") == str(plan.DEFAULT_PROXY_STREAMS + 2 * 5)
    assert str(plan.BEHIND_FRONT_CONF) not in command


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: a free one)" in text
    assert "(default: a free one) (default: 0)" not in text and "(default: 0)" not in text
    assert "(default: haproxy)" in text


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert plan.raise_descriptor_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_front_plan_takes_its_timeouts_from_the_ini():
    settings = parse_settings(
        {
            "amqp_url": "amqp://localhost",
            "events_max_lifetime": "120",
            "session.secret": "s" * 40,
            "auth": "off",
        }
    )
    args = cli.parse(["serve", "--port", "8088", "--mount-point", "/gateway"])
    front = plan.front_plan(args, settings, gateway_port=9001, events_port=9002, as_root=False)
    assert (front.host, front.port, front.mount_point) == ("localhost", 8088, "/gateway")
    assert (front.gateway_port, front.events_port, front.user) == (9001, 9002, None)
    assert front.gateway_timeout == plan.server_limits(settings).socket_timeout
    assert front.stream_lifetime == 120
    assert (
        plan.front_plan(cli.parse(["serve", "--socket-timeout", "99"]), settings, 1, 2, True).gateway_timeout
        == 99
    )
    assert plan.front_plan(args, settings, 1, 2, as_root=True).user == "www-data"


def test_event_server_command_names_the_ini_and_the_local_port():
    command = plan.events_arguments("/srv/hutch/production.ini", 9123)
    assert command[:3] == [sys.executable, "-m", "hutch.events.main"]
    assert flag(command, "--ini") == "/srv/hutch/production.ini"
    assert (flag(command, "--host"), flag(command, "--port")) == ("127.0.0.1", "9123")


def test_the_free_ports_for_the_event_servers_and_apache_are_never_one_port():
    """Two ``bind(0)`` in a row may get one port twice (seen: HAProxy's event servers and Apache both
    on one port, Apache then refusing to start); ports bound together cannot."""
    ports = plan.free_ports(50)
    assert len(set(ports)) == 50


def test_hutch_conf_proxies_events_to_the_event_servers_without_buffering():
    text = HUTCH_CONF.read_text()
    proxy = directive(text, "ProxyPass").split()
    assert proxy[:2] == ["/gateway/events/", "http://127.0.0.1:8081/events/"]
    assert "flushpackets=on" in proxy
    unit = (ROOT / "apache" / "hutch-events@.service").read_text()
    assert "--port 8081" in unit and "User=www-data" in unit


def test_no_ini_given_means_production_ini_and_no_environment(monkeypatch):
    monkeypatch.delenv("HUTCH_INI", raising=False)
    args = cli.parse(["serve"])
    assert args.ini is None
    assert plan.resolve_ini(args) == str(ROOT / "production.ini")
    assert "HUTCH_INI" not in os.environ

    args = cli.parse(["serve", "--ini", "tests/e2e/test.ini"])
    assert plan.resolve_ini(args) == os.path.abspath("tests/e2e/test.ini")
    assert os.environ["HUTCH_INI"] == os.path.abspath("tests/e2e/test.ini")


# --- limits derived from the settings -------------------------------------------------------


def test_limits_for_the_default_settings():
    assert plan.server_limits(Settings()) == DEFAULT_LIMITS


def test_limits_follow_the_settings():
    settings = Settings(max_body_bytes=10_000_000, rpc_max_timeout=100.0, events_max_lifetime=600.5)
    limits = plan.server_limits(settings)
    assert limits.limit_request_body == 10_000_000 + 64 * 1024
    assert limits.request_timeout == 100 + 30  # the longest request in mod_wsgi: an RPC
    assert limits.socket_timeout == 130  # an RPC may be silent for rpc_max_timeout


def test_files_the_settings_create_are_listed_with_their_new_folders(tmp_path):
    (tmp_path / "existing").mkdir()
    raw = {
        "session_secret_file": str(tmp_path / "var" / "deep" / "session.secret"),
        "auth.key_file": str(tmp_path / "existing" / "api-keys"),
    }
    assert plan.files_created_at_start(raw) == [
        tmp_path / "var" / "deep" / "session.secret",
        tmp_path / "var" / "deep",
        tmp_path / "var",
        tmp_path / "existing" / "api-keys",
    ]


# --- apache/hutch.conf ---------------------------------------------------------------------------


def production_settings():
    """production.ini's settings, without creating its secret and key files."""
    raw, here = read_ini(str(ROOT / "production.ini"))
    for key in ("session_secret_file", "auth.key_file"):
        raw.pop(key, None)
    raw["session.secret"] = "x" * 32
    return parse_settings(raw, here=here)


def daemon_options(text):
    match = re.search(r"^WSGIDaemonProcess hutch((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert match, "no WSGIDaemonProcess hutch in hutch.conf"
    return dict(re.findall(r"([a-z-]+)=(\S+)", match.group(1)))


def directive(text, name):
    values = re.findall(rf"^\s*{name}\s+(.+?)\s*$", text, re.MULTILINE)
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def test_hutch_conf_carries_the_numbers_hutch_serve_uses():
    text = HUTCH_CONF.read_text()
    limits = plan.server_limits(production_settings())
    options = daemon_options(text)

    assert options["processes"] == str(plan.DEFAULT_PROCESSES)
    assert options["threads"] == str(plan.DEFAULT_THREADS)
    assert options["request-timeout"] == str(limits.request_timeout)
    assert options["socket-timeout"] == str(limits.socket_timeout)
    assert options["queue-timeout"] == str(limits.queue_timeout)
    assert options["user"] == options["group"] == plan.DEFAULT_USER
    assert directive(text, "LimitRequestBody") == str(limits.limit_request_body)
    reads = plan.READ_TIMEOUTS
    header = f"header={reads[1]}-{reads[3]},MinRate={reads[5]}"
    body = f"body={reads[7]},MinRate={reads[9]}"
    assert directive(text, "RequestReadTimeout") == f"{header} {body}"
    assert directive(text, "WSGIChunkedRequest") == "On"
    # hutch serve leaves these at Apache's defaults, which hutch.conf states
    assert directive(text, "LimitRequestFields") == "100"
    assert directive(text, "LimitRequestFieldSize") == "8190"


def test_hutch_conf_turns_trace_off_and_serves_the_same_error_documents_as_hutch_serve():
    text = HUTCH_CONF.read_text()
    assert directive(text, "TraceEnable") == "Off"
    documents = re.findall(r"^ErrorDocument (\d+) (\S+)$", text, re.MULTILINE)
    assert documents == [(str(status), path) for status, path in error_documents("/gateway")]
    assert directive(text, "Alias") == "/gateway/.errors ${HUTCH_HOME}/apache/errors"
    errors = re.search(r"<Directory \$\{HUTCH_HOME\}/apache/errors>(.*?)</Directory>", text, re.DOTALL)
    assert re.findall(r"Require (.+)", errors.group(1)) == ["all granted"]


def test_hutch_conf_routes_gateway_to_the_daemon_and_grants_only_the_script():
    text = HUTCH_CONF.read_text()
    assert directive(text, "WSGIProcessGroup") == "hutch"
    assert directive(text, "WSGIApplicationGroup") == "%{GLOBAL}"
    assert directive(text, "WSGIPassAuthorization") == "On"
    assert directive(text, "WSGIScriptAlias").startswith("/gateway ${HUTCH_HOME}/gateway.wsgi ")
    directory = re.search(r"<Directory \$\{HUTCH_HOME\}>(.*?)</Directory>", text, re.DOTALL).group(1)
    assert re.findall(r"Require (.+)", directory) == ["all denied", "all granted"]
    assert "<Files gateway.wsgi>" in directory


def wrapper_config(tmp_path, conf):
    """A minimal httpd.conf that loads mod_wsgi from this venv and includes ``conf``."""
    module_config = subprocess.run(
        [str(VENV_BIN / "mod_wsgi-express"), "module-config"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    wrapper = tmp_path / "httpd.conf"
    wrapper.write_text(
        f"ServerRoot {tmp_path}\n"
        f"PidFile {tmp_path}/httpd.pid\n"
        f"DefaultRuntimeDir {tmp_path}\n"
        "ServerName 127.0.0.1\n"
        "Listen 127.0.0.1:8\n"
        f"ErrorLog {tmp_path}/error_log\n"
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
        "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n"
        "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
        "LoadModule reqtimeout_module /usr/lib/apache2/modules/mod_reqtimeout.so\n"
        "LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so\n"
        "LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so\n"
        f"{module_config}\n"
        f"Define HUTCH_HOME {ROOT}\n"
        f"Include {conf}\n"
    )
    return wrapper


def apache_syntax_check(wrapper):
    return subprocess.run(
        ["apache2", "-t", "-f", str(wrapper)], capture_output=True, text=True, timeout=60, check=False
    )


def test_hutch_conf_passes_apache_syntax_check(tmp_path):
    result = apache_syntax_check(wrapper_config(tmp_path, HUTCH_CONF))
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stdout + result.stderr


def test_the_syntax_check_catches_a_broken_conf(tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text(HUTCH_CONF.read_text().replace("request-timeout=", "request-timout="))
    result = apache_syntax_check(wrapper_config(tmp_path, broken))
    assert result.returncode != 0
    assert "Invalid option to WSGI daemon process definition" in result.stderr


# --- hutch serve refuses to start, clearly ---------------------------------------------------------


MINIMAL_INI = f"[app:main]\nuse = egg:hutch\nauth = off\nsession.secret = {'s' * 32}\n"


def run_serve(*args):
    environment = {key: value for key, value in os.environ.items() if key != "HUTCH_INI"}
    return subprocess.run(
        [str(VENV_BIN / "hutch"), "serve", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


def test_serve_refuses_a_bad_ini_before_starting_apache(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text(MINIMAL_INI + "rpc_timout = 5\n")
    result = run_serve("--ini", str(ini))
    assert result.returncode == 1
    assert "hutch serve:" in result.stderr and "unknown setting 'rpc_timout'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_ini(tmp_path):
    result = run_serve("--ini", str(tmp_path / "nowhere.ini"))
    assert result.returncode == 1
    assert "no such ini file" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the daemon user only matters when started as root")
def test_serve_names_what_the_daemon_user_cannot_read(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ini = private / "gateway.ini"
    ini.write_text(MINIMAL_INI + f"apps_directory = {ROOT}/apps\n")
    result = run_serve("--ini", str(ini))
    assert result.returncode == 1
    assert f"'www-data' cannot read {ini}" in result.stderr
    assert "o+x" in result.stderr


# --- gateway.wsgi ------------------------------------------------------------------------------------


def test_gateway_wsgi_loads_the_ini_named_by_hutch_ini_even_without_logging_sections(tmp_path, monkeypatch):
    ini = tmp_path / "plain.ini"
    ini.write_text(MINIMAL_INI + f"apps_directory = {ROOT}/apps\n")
    monkeypatch.setenv("HUTCH_INI", str(ini))

    namespace = runpy.run_path(str(ROOT / "gateway.wsgi"))

    assert namespace["INI"] == str(ini)
    application = namespace["application"]
    assert application.gateway.settings.apps_directory == f"{ROOT}/apps"
    application.gateway.broker.close()
