"""A broker restart, as an operator reads it in the log: Hutch's own lines, one per change of state
(lost, connecting again with its delay, connected), and not one ERROR line or traceback from the
broker clients (pika, aiormq) for a disconnect that is expected."""

import pathlib
import shutil
import time

import pytest
import requests

from harness.server import GatewayServer

from .conftest import write_ini

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

PRODUCTION_INI = pathlib.Path(__file__).resolve().parents[2] / "production.ini"
OUTAGE = 4.0


def with_production_logging(ini):
    """``ini`` with the logging sections of production.ini (what an operator runs)."""
    text = ini.read_text()
    production = PRODUCTION_INI.read_text()
    ini.write_text(text[: text.index("[loggers]")] + production[production.index("[loggers]") :])
    return ini


def test_a_broker_restart_logs_hutchs_state_changes_and_no_client_errors(private_broker):
    ini = with_production_logging(write_ini(private_broker.amqp_url))
    server = GatewayServer(ini, processes=1, threads=2)
    try:
        server.start()
        stream = requests.get(server.url + "/events/t.outage-log", stream=True, timeout=10)
        assert stream.status_code == 200
        log = server.server_root / "console.log"
        mark = log.stat().st_size
        with private_broker.app_stopped():
            time.sleep(OUTAGE)
        deadline = time.monotonic() + 30
        while requests.get(server.url + "/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not reconnect"
            time.sleep(0.5)
        while log.read_bytes()[mark:].count(b"event server connected to") < 2:  # both event servers
            assert time.monotonic() < deadline, "an event server did not reconnect"
            time.sleep(0.5)
        stream.close()
        lines = log.read_bytes()[mark:].decode(errors="replace").splitlines()
    finally:
        server.stop()
        server.cleanup()
        shutil.rmtree(ini.parent, ignore_errors=True)
    text = "\n".join(lines)
    assert " ERROR " not in text and "Traceback" not in text, text[-6000:]
    assert not [line for line in lines if "[pika." in line or "[aiormq." in line or "[aio_pika." in line]
    assert "[hutch.amqp.client]" in text and "connection to the broker lost" in text
    assert "connected to the broker at" in text
    assert "event server lost its connection" in text and "event server connected to" in text
