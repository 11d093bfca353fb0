"""A client generated from the served /openapi.json (openapi-python-client) against the live gateway.

Every operation must be generated (a ``*/*`` body or reply makes the generator skip or not parse
it), work against the gateway under mod_wsgi-express, and get its errors parsed as the models the
document gives them: an error code the document does not list fails the parse.
"""

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import uuid

import pytest
import requests

from harness import amqp
from tests.e2e.client import FULL_KEY

pytestmark = pytest.mark.e2e

PACKAGE = f"hutch_generated_{uuid.uuid4().hex[:8]}"
GENERATOR = pathlib.Path(sys.executable).with_name("openapi-python-client")
# The generator has no NDJSON support, so it leaves out the two batch operations (documented in
# docs/http.md, "Notes for clients"); every other operation must be generated.
NOT_GENERATED = {"POST /broadcast/{exchange}/batch", "POST /notify/{exchange}/batch"}
OPERATIONS = {  # tag folder -> the operation modules the document must give
    "broadcast": {"broadcast"},
    "notify": {"notify", "register_consumer"},
    "rpc": {"call"},
    "dashboard": {"dashboard", "events"},
    "dashboard_ui": {"dashboard_act", "dashboard_asset", "dashboard_broadcast", "dashboard_index"}
    | {"dashboard_ticket"},
    "operations": {"health", "index", "metrics", "openapi"},
}


@pytest.fixture(scope="module")
def generated(gateway, tmp_path_factory):
    """The package generated from the document the gateway serves, imported."""
    folder = tmp_path_factory.mktemp("generated")
    document = requests.get(f"{gateway.url}/openapi.json", timeout=10).json()
    (folder / "openapi.json").write_text(json.dumps(document))
    (folder / "config.json").write_text(json.dumps({"post_hooks": []}))
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
            "--config",
            str(folder / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PATH": f"{GENERATOR.parent}:{os.environ.get('PATH', '')}"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = set(
        re.findall(
            r"WARNING parsing (\w+ \S+) within \w+\. Endpoint will not be generated",
            result.stdout + result.stderr,
        )
    )
    assert skipped == NOT_GENERATED, result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield folder / PACKAGE, result.stdout + result.stderr
    finally:
        sys.path.remove(str(folder))


def module(name):
    return importlib.import_module(f"{PACKAGE}.{name}")


def client(gateway, key=FULL_KEY, **options):
    package = module("client")
    options = {"raise_on_unexpected_status": True, "timeout": 30, **options}
    if key is None:
        return package.Client(base_url=gateway.url, **options)
    return package.AuthenticatedClient(base_url=gateway.url, token=key, **options)


def error_of(parsed, status, code):
    """The error parsed as the model the document gives ``status``, with ``code``."""
    model = type(parsed).__name__
    assert model.endswith(f"Response{status}"), model
    assert parsed.error.value == code and parsed.detail
    return parsed


def test_every_operation_is_generated(generated):
    package, _output = generated
    for tag, operations in OPERATIONS.items():
        found = {path.stem for path in (package / "api" / tag).glob("*.py")} - {"__init__"}
        assert operations <= found, (tag, found)


def test_broadcast_bytes_idempotency_key_and_errors(gateway, generated):
    broadcast = module("api.broadcast.broadcast")
    types_ = module("types")
    exchange = amqp.unique("gen")
    api = client(gateway)
    try:
        with amqp.BoundQueue(exchange) as queue:
            raw = broadcast.sync_detailed(exchange, client=api, body=types_.File(payload=b"\x00\x01"))
            assert raw.status_code == 202 and raw.parsed.exchange == exchange and raw.parsed.routed
            _method, properties, body = queue.get()
            assert (properties.content_type, body) == ("application/octet-stream", b"\x00\x01")
            keyed = broadcast.sync_detailed(
                exchange, client=api, body=types_.File(payload=b"{}"), idempotency_key="k-1"
            )
            assert keyed.parsed.message_id == "k-1"
            _method, properties, body = queue.get()
            assert properties.message_id == "k-1" and body == b"{}"
        error_of(broadcast.sync(exchange, client=client(gateway, None)), 401, "unauthorized")
        error_of(broadcast.sync("amq.fanout", client=api), 403, "reserved_name")
        error_of(broadcast.sync("bad/name", client=api), 400, "invalid_name")  # sent as bad%2Fname
        error_of(broadcast.sync("bad name", client=api), 400, "invalid_name")
    finally:
        amqp.delete(exchanges=[exchange])


def test_notify_and_register_consumer(gateway, generated):
    notify = module("api.notify.notify")
    register = module("api.notify.register_consumer")
    types_ = module("types")
    exchange = amqp.unique("gen")
    api = client(gateway)
    try:
        error_of(notify.sync(exchange, client=api, body=types_.File(payload=b"x")), 409, "unroutable")
        created = register.sync_detailed(exchange, "billing", client=api)
        assert created.status_code == 201 and created.parsed.queue == f"{exchange}.billing"
        again = register.sync_detailed(exchange, "billing", client=api)
        assert again.status_code == 200 and again.parsed.created is False
        accepted = notify.sync(exchange, client=api, body=types_.File(payload=b"paid"))
        assert accepted.exchange == exchange and accepted.message_id
        assert amqp.queue_depth(f"{exchange}.billing") == 1
        error_of(register.sync(exchange, "bad/name", client=api), 400, "invalid_name")
    finally:
        amqp.delete(exchanges=[exchange], queues=[f"{exchange}.billing"])


def test_rpc_reply_no_responder_and_responder_status(gateway, generated):
    call = module("api.rpc.call")
    types_ = module("types")
    exchange = amqp.unique("gen")
    api = client(gateway)

    def answer(properties, body):
        status = 201 if body == b"make" else 200
        reply = {
            "content_type": "text/plain",
            "content_encoding": "utf-8",
            "headers": {"http_status": status},
        }
        return [amqp.Answer(body.upper(), reply)]

    with amqp.Responder(exchange, "work", handler=answer):
        ok = call.sync_detailed(exchange, "work", client=api, body=types_.File(payload=b"ping"))
        assert ok.status_code == 200 and ok.parsed.payload.read() == b"PING"  # parsed, not left raw
        assert ok.headers["X-Amqp-Content-Encoding"] == "utf-8" and "Content-Encoding" not in ok.headers
        made = call.sync_detailed(exchange, "work", client=api, body=types_.File(payload=b"make"))
        assert made.status_code == 201 and made.parsed.payload.read() == b"MAKE"  # the default response
    error_of(call.sync(exchange, "nobody", client=api, x_timeout=2), 503, "no_responder")
    error_of(call.sync(amqp.unique("gen.none"), "x", client=api), 503, "no_responder")
    error_of(call.sync(exchange, "bad/key", client=api), 400, "invalid_name")


def test_events_errors_and_dashboard_pages(gateway, generated):
    events = module("api.dashboard.events")
    dashboard = module("api.dashboard.dashboard")
    ticket = module("api.dashboard_ui.dashboard_ticket")
    index = module("api.dashboard_ui.dashboard_index")
    asset = module("api.dashboard_ui.dashboard_asset")
    act = module("api.dashboard_ui.dashboard_act")
    form_broadcast = module("api.dashboard_ui.dashboard_broadcast")
    models = module("models")
    api = client(gateway)
    error_of(events.sync("bad name", client=api), 400, "invalid_name")
    error_of(events.sync("amq.x", client=api), 403, "reserved_name")
    error_of(events.sync("t.gen.x", client=client(gateway, None)), 401, "unauthorized")
    assert dashboard.sync_detailed("t.gen.x", client=api).status_code == 200
    as_json = client(gateway, headers={"Accept": "application/json"})  # the UI answers */* with HTML
    page = requests.get(f"{gateway.url}/dashboard/bad%20name", headers={"Accept": "*/*"}, timeout=10)
    assert page.status_code == 400 and page.headers["Content-Type"].startswith("text/html")
    error_of(dashboard.sync("bad name", client=as_json), 400, "invalid_name")
    issued = ticket.sync("t.gen.x", client=api)
    assert issued.ticket and issued.expires_in > 0
    assert index.sync_detailed(client=api).status_code == 200
    for name in models.DashboardAssetName:
        assert asset.sync_detailed(name, client=api).status_code == 200
    api = as_json
    no_token = models.DashboardForm(csrf_token="forged", action=models.DashboardFormAction.LOGOUT)
    error_of(act.sync(client=api, body=no_token), 403, "bad_csrf_token")
    form = models.BroadcastForm(csrf_token="forged", body="hi")
    error_of(form_broadcast.sync("t.gen.x", client=api, body=form), 403, "bad_csrf_token")


def test_operations(gateway, generated):
    health = module("api.operations.health")
    openapi = module("api.operations.openapi")
    index = module("api.operations.index")
    metrics = module("api.operations.metrics")
    api = client(gateway)
    assert health.sync(client=client(gateway, None)).broker.value == "ok"
    assert openapi.sync_detailed(client=api).status_code == 200
    assert "openapi" in index.sync(client=api).links.additional_properties
    assert metrics.sync_detailed(client=api).status_code == 200
    error_of(metrics.sync(client=client(gateway, None)), 401, "unauthorized")
