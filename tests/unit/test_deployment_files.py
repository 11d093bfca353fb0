"""The deployment files a sysadmin copies: the remote-broker ini parses, bin/setup --production is lean."""

import pathlib
import re
import subprocess

import pika
import pytest
from paste.deploy import appconfig

from hutch.settings import parse_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_remote_broker_ini_is_a_valid_gateway_ini(tmp_path):
    config = appconfig(f"config:{ROOT / 'apache' / 'remote-broker.ini'}")
    raw = dict(config.local_conf)
    raw["session_secret_file"] = str(tmp_path / "session.secret")  # not /srv/hutch in a test
    raw["auth.key_file"] = str(tmp_path / "api-keys")
    settings = parse_settings(raw, here=str(ROOT))
    assert settings.session["session.secure"] in (True, "true")
    assert settings.access_log is True
    parameters = pika.URLParameters(settings.amqp_url[0])
    assert (parameters.host, parameters.port, parameters.virtual_host) == (
        "rabbit.example.org",
        5671,
        "hutch",
    )
    assert parameters.ssl_options is not None
    # complete for a cluster and several hosts: quorum queues, shared Redis, history everywhere
    assert settings.notify_queue_type == "quorum"
    assert raw["session.type"] == "ext:redis" and raw["idempotency_url"].startswith("redis://")
    assert raw["events_history"] == "*"


@pytest.mark.parametrize("name", ["hutch-events@.service", "hutch-delivery@.service"])
def test_the_event_servers_and_delivery_read_the_ini_apache_reads(name):
    unit = (ROOT / "apache" / name).read_text()
    assert "EnvironmentFile=-/etc/hutch/hutch.env" in unit
    # /metrics sums the event servers' values too: they write to Apache's folder, restarted with it
    assert "Environment=PROMETHEUS_MULTIPROC_DIR=/run/hutch-metrics" in unit
    assert "PartOf=apache2.service" in unit
    assert "PROMETHEUS_MULTIPROC_DIR=/run/hutch-metrics" in (ROOT / "apache" / "README.md").read_text()
    assert unit.index("Environment=HUTCH_INI=") < unit.index("EnvironmentFile=")  # the file wins
    assert (
        "HUTCH_INI=/etc/hutch/gateway.ini in /etc/hutch/hutch.env"
        in (ROOT / "apache" / "remote-broker.ini").read_text()
    )


def test_setup_for_production_installs_only_what_serving_needs():
    script = (ROOT / "bin" / "setup").read_text()
    production = re.search(r"PRODUCTION_PACKAGES=\(([^)]*)\)", script).group(1).split()
    assert {"apache2", "apache2-dev", "python3-venv", "python3-dev"} <= set(production)
    assert not {"chromium", "chromium-driver", "wrk"} & set(production)
    assert '--production) APT_PACKAGES=("${PRODUCTION_PACKAGES[@]}"); EXTRAS="" ;;' in script
    development = re.search(r"APT_PACKAGES=\(([^)]*)\)", script).group(1).split()
    assert "apache2" in development  # a2enmod, a2enconf and a2ensite come with it


def test_setup_refuses_an_unknown_option():
    result = subprocess.run(["bash", str(ROOT / "bin" / "setup"), "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: bin/setup [--production]" in result.stderr
