"""apache/README.md's install steps, followed on a private instance of Debian's apache2 package.

Debian runs several Apache instances side by side, each with its own
``APACHE_CONFDIR``; a2enmod, a2enconf, a2ensite and apache2ctl all honour it.
This test copies /etc/apache2 to a temporary folder and runs the README's
commands there, so the machine's own Apache is never touched.  Its only
changes to the steps: the instance's folders, ports and socket folder are
its own, the certificate is self-signed, HUTCH_HOME is this checkout, the
ini lives in the instance (``HUTCH_INI``, step 7's variant), and apache2ctl
starts Apache where the README says systemctl.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import types

import pytest
import requests

from harness import amqp
from harness.scrape import samples, value
from harness.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
README = (ROOT / "apache" / "README.md").read_text()
HONOURED_WITHIN = 5.0
DEBIAN_CONFS = {
    "charset.conf",
    "localized-error-pages.conf",
    "other-vhosts-access-log.conf",
    "security.conf",
    "serve-cgi-bin.conf",
}
# The README's commands this test runs (paths aside); each must still be in the README.
README_COMMANDS = [
    "install -d -o www-data -g www-data -m 0700 /srv/hutch/var",
    "/srv/hutch/.venv/bin/mod_wsgi-express module-config > /etc/apache2/mods-available/wsgi_hutch.load",
    "a2dismod -q wsgi 2>/dev/null || true",
    "a2enmod -q wsgi_hutch reqtimeout ssl headers",
    "cp /srv/hutch/apache/hutch.conf /etc/apache2/conf-available/hutch.conf",
    "cp /srv/hutch/apache/hutch-mpm.conf /etc/apache2/conf-available/hutch-mpm.conf",
    "a2enconf -q hutch hutch-mpm",
    "echo 'export PROMETHEUS_MULTIPROC_DIR=/run/hutch-metrics' >> /etc/apache2/envvars",
    "ExecStartPre=/bin/rm -rf /run/hutch-metrics",
    "ExecStartPre=/usr/bin/install -d -o www-data -g www-data -m 0700 /run/hutch-metrics",
    "cp /srv/hutch/apache/hutch-site.conf /etc/apache2/sites-available/hutch.conf",
    "a2dissite -q 000-default",
    "a2ensite -q hutch",
    "session.secure = true",
    "apache2ctl configtest",
    ".venv/bin/hutch keys add",
    ".venv/bin/hutch keys revoke admin",
]


def sh(command, environment, check=True):
    result = subprocess.run(
        ["/bin/sh", "-c", command], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def write_instance_files(instance, http, https):
    """What differs from a real host: the instance's own folders and ports."""
    confdir = instance / "apache2"
    shutil.copytree("/etc/apache2", confdir, symlinks=True)
    for folder, debian in (("conf-enabled", DEBIAN_CONFS), ("sites-enabled", {"000-default.conf"})):
        for entry in (confdir / folder).iterdir():  # what this host enabled besides Debian's own
            if entry.name not in debian:
                entry.unlink()
    for folder in ("run", "lock", "log"):
        (instance / folder).mkdir()
    (confdir / "envvars").write_text(
        "unset HOME\n"
        "export APACHE_RUN_USER=www-data\n"
        "export APACHE_RUN_GROUP=www-data\n"
        f"export APACHE_PID_FILE={instance}/run/apache2.pid\n"
        f"export APACHE_RUN_DIR={instance}/run\n"
        f"export APACHE_LOCK_DIR={instance}/lock\n"
        f"export APACHE_LOG_DIR={instance}/log\n"
        "export LANG=C\n"
        "export LANG\n"
    )
    (confdir / "ports.conf").write_text(
        f"Listen 127.0.0.1:{http}\n<IfModule ssl_module>\n    Listen 127.0.0.1:{https}\n</IfModule>\n"
    )
    return confdir


def gateway_ini(instance):
    """production.ini, with the instance's var/ and step 6's session.secure, and the access log on."""
    text = (ROOT / "production.ini").read_text()
    text = text.replace("%(here)s/var/", f"{instance}/var/")
    text = text.replace("session.secure = false", "session.secure = true")
    extra = f"apps_directory = {ROOT}/apps\ntemplates_directory = {ROOT}/templates\naccess_log = true\n"
    text = text.replace("[app:main]\n", "[app:main]\n" + extra, 1)
    path = instance / "gateway.ini"
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def system_apache():
    instance = pathlib.Path(tempfile.mkdtemp(prefix="hutch-apache2-"))
    os.chmod(instance, 0o755)  # www-data reads the ini and reaches the daemon sockets
    http, https = free_port(), free_port()
    confdir = write_instance_files(instance, http, https)
    environment = {**os.environ, "APACHE_CONFDIR": str(confdir)}
    environment.pop("HUTCH_INI", None)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    etc = f"{confdir}"
    # 2. a folder the daemons own
    sh(f"install -d -o www-data -g www-data -m 0700 {instance}/var", environment)
    # 3. mod_wsgi from the venv, and the modules
    sh(f"{VENV_BIN}/mod_wsgi-express module-config > {etc}/mods-available/wsgi_hutch.load", environment)
    sh("a2dismod -q wsgi 2>/dev/null || true", environment)
    sh("a2enmod -q wsgi_hutch reqtimeout ssl headers", environment)
    # 4. the gateway's configuration (HUTCH_HOME = this checkout) and Apache's workers
    conf = (ROOT / "apache" / "hutch.conf").read_text()
    conf = conf.replace("WSGISocketPrefix /var/run/apache2/wsgi", f"WSGISocketPrefix {instance}/run/wsgi")
    (confdir / "conf-available" / "hutch.conf").write_text(f"Define HUTCH_HOME {ROOT}\n" + conf)
    sh(f"cp {ROOT}/apache/hutch-mpm.conf {etc}/conf-available/hutch-mpm.conf", environment)
    sh("a2enconf -q hutch hutch-mpm", environment)
    # 5. the metrics folder: exported in envvars, emptied before Apache starts
    metrics = instance / "metrics"
    sh(f"echo 'export PROMETHEUS_MULTIPROC_DIR={metrics}' >> {etc}/envvars", environment)
    sh(f"/bin/rm -rf {metrics}", environment)
    sh(f"/usr/bin/install -d -o www-data -g www-data -m 0700 {metrics}", environment)
    # 6. HTTPS with a (here self-signed) certificate, HSTS, session.secure in the ini
    certificate, key = instance / "cert.pem", instance / "key.pem"
    sh(
        f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {key} -out {certificate} -days 2 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1",
        environment,
    )
    site = (ROOT / "apache" / "hutch-site.conf").read_text()
    site = site.replace("*:80>", f"*:{http}>").replace("*:443>", f"*:{https}>")
    defines = (
        f"Define HUTCH_SERVER_NAME localhost\nDefine HUTCH_CERTIFICATE {certificate}\n"
        f"Define HUTCH_CERTIFICATE_KEY {key}\n"
    )
    (confdir / "sites-available" / "hutch.conf").write_text(defines + site)
    sh("a2dissite -q 000-default", environment)
    sh("a2ensite -q hutch", environment)
    ini = gateway_ini(instance)
    sh(f"echo 'export HUTCH_INI={ini}' >> {etc}/envvars", environment)
    # 7. start and check
    sh("apache2ctl configtest", environment)
    sh("apache2ctl start", environment)
    origin = f"https://127.0.0.1:{https}"
    server = types.SimpleNamespace(
        instance=instance,
        ini=ini,
        environment=environment,
        origin=origin,
        http_origin=f"http://127.0.0.1:{http}",
        verify=str(certificate),
        error_log=instance / "log" / "error.log",
    )
    try:
        wait_healthy(server)
        yield server
    finally:
        sh("apache2ctl stop", environment, check=False)
        pid_file = instance / "run" / "apache2.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(instance, ignore_errors=True)


def wait_healthy(server, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            response = requests.get(server.origin + "/gateway/health", verify=server.verify, timeout=5)
            if response.status_code == 200:
                return response
        log = server.error_log.read_text(errors="replace")[-4000:] if server.error_log.exists() else ""
        assert time.monotonic() < deadline, f"the gateway did not become healthy:\n{log}"
        time.sleep(0.3)


def admin_key(server):
    for line in (server.instance / "var" / "api-keys").read_text().splitlines():
        words = line.split()
        if words and words[0] == "admin":
            return words[1]
    raise AssertionError("no admin key")


def get(server, path, secret=None, **kwargs):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return requests.get(server.origin + path, headers=headers, verify=server.verify, timeout=30, **kwargs)


def hutch_keys(server, *argv):
    command = [str(VENV_BIN / "hutch"), "keys", *argv, "--ini", str(server.ini)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_readme_still_says_what_this_test_does():
    for command in README_COMMANDS:
        assert command in README, command


def test_plain_http_is_sent_to_https(system_apache):
    response = requests.get(system_apache.http_origin + "/gateway/health", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/gateway/health"


def test_https_serves_the_gateway_with_hsts(system_apache):
    response = wait_healthy(system_apache)
    assert response.json() == {"broker": "ok"}
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


def test_the_dashboard_session_cookie_is_secure(system_apache):
    response = get(system_apache, "/gateway/dashboard/")
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"].lower()
    assert "hutch_session=" in cookie and "secure" in cookie and "httponly" in cookie


def test_both_daemons_run_and_apache_has_workers_for_them(system_apache):
    pid = (system_apache.instance / "run" / "apache2.pid").read_text().strip()
    children = subprocess.run(
        ["ps", "--ppid", pid, "-o", "user=,args="], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    daemons = [line for line in children if "(wsgi:hutch)" in line]
    assert len(daemons) == 2 and all(line.startswith("www-data") for line in daemons), children
    # Debian's mod_status (local only): one scoreboard slot per possible worker, ServerLimit x ThreadLimit;
    # Debian's own mpm_event.conf leaves them at 16 x 64, hutch-mpm.conf raises them
    status = get(system_apache, "/server-status?auto").text
    scoreboard = next(line for line in status.splitlines() if line.startswith("Scoreboard: "))
    assert len(scoreboard.removeprefix("Scoreboard: ")) == 20 * 64


def test_publishing_is_logged_as_json_with_its_message_id(system_apache):
    exchange = amqp.unique("sysapache")
    try:
        with amqp.BoundQueue(exchange) as consumer:
            response = requests.post(
                f"{system_apache.origin}/gateway/broadcast/{exchange}",
                data=b"through the system apache",
                headers={"Authorization": f"Bearer {admin_key(system_apache)}", "Idempotency-Key": exchange},
                verify=system_apache.verify,
                timeout=30,
            )
            assert response.status_code == 202, response.text
            assert consumer.get()[1].message_id == exchange
    finally:
        amqp.delete(exchanges=[exchange])
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in system_apache.error_log.read_text().splitlines() if exchange in line]
        entries = [json.loads(line[line.index("{") :]) for line in lines if '"idiom"' in line]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert entries, "no access log line"
    assert entries[0]["idiom"] == "broadcast" and entries[0]["status"] == 202
    assert entries[0]["message_id"] == exchange and entries[0]["exchange"] == exchange


def test_metrics_cover_both_daemons_and_survive_a_graceful_restart(system_apache):
    secret = admin_key(system_apache)
    for _ in range(5):
        get(system_apache, "/gateway/health")
    before = samples(get(system_apache, "/gateway/metrics", secret).text)
    served = value(before, "hutch_http_requests_total", app="health", status="200")
    assert served >= 5
    files = list((system_apache.instance / "metrics").glob("*.db"))
    assert files, "the daemons wrote no metrics to PROMETHEUS_MULTIPROC_DIR"
    sh("apache2ctl graceful", system_apache.environment)  # what logrotate does to Apache
    time.sleep(2)
    wait_healthy(system_apache)
    after = samples(get(system_apache, "/gateway/metrics", secret).text)
    assert value(after, "hutch_http_requests_total", app="health", status="200") > served


def wait_for_status(server, secret, status, since):
    while get(server, "/gateway/metrics", secret).status_code != status:
        assert time.monotonic() - since < HONOURED_WITHIN, f"not {status} within {HONOURED_WITHIN} s"
        time.sleep(0.1)


def test_key_rotation_without_a_restart(system_apache):
    old = admin_key(system_apache)
    added = time.monotonic()
    new = hutch_keys(system_apache, "add", "operator", "*")
    wait_for_status(system_apache, new, 200, added)
    revoked = time.monotonic()
    hutch_keys(system_apache, "revoke", "admin")
    wait_for_status(system_apache, old, 401, revoked)
    assert get(system_apache, "/gateway/metrics", new).status_code == 200
    assert old not in (system_apache.instance / "var" / "api-keys").read_text()
    assert new not in (system_apache.instance / "var" / "api-keys").read_text()
