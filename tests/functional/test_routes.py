"""What every route shares: names, body limits, methods, unknown paths, health, mounting."""

import pytest
import webtest

from harness.server import free_port

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("prefix", ["/broadcast", "/notify"])
@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("amq.fanout", 403, "reserved_name"),
        ("amq.anything", 403, "reserved_name"),
        ("bad%20name", 400, "invalid_name"),
        ("caf%C3%A9", 400, "invalid_name"),
        ("star*", 400, "invalid_name"),
        ("x" * 128, 400, "invalid_name"),
    ],
)
def test_bad_exchange_names(client, prefix, name, status, code):
    response = client.post(f"{prefix}/{name}", b"x", status=status)
    assert response.json["error"] == code


def test_longest_legal_name_is_accepted(client, amqp, unique_name):
    name = unique_name().ljust(127, "x")
    amqp.track(exchanges=[name])
    assert client.post(f"/broadcast/{name}", b"", status=202).json["exchange"] == name


@pytest.mark.parametrize("path", ["/broadcast/{x}", "/notify/{x}", "/rpc/{x}/key"])
def test_body_over_the_limit_is_413(client, settings, exchange, path):
    body = b"x" * (settings.max_body_bytes + 1)
    response = client.post(path.format(x=exchange), body, content_type="text/plain", status=413)
    assert response.json["error"] == "payload_too_large"


def test_body_at_the_limit_is_accepted(client, amqp, settings, exchange):
    client.post(f"/broadcast/{exchange}", b"", status=202)
    queue = amqp.declare_queue(exchange=exchange, exclusive=True)
    body = b"y" * settings.max_body_bytes
    client.post(f"/broadcast/{exchange}", body, content_type="text/plain", status=202)
    assert amqp.get(queue)[1] == body


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/broadcast/x", "POST"),
        ("put", "/broadcast/x", "POST"),
        ("delete", "/notify/x", "POST"),
        ("get", "/notify/x/queues/c", "PUT"),
        ("post", "/notify/x/queues/c", "PUT"),
        ("get", "/rpc/x/key", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allow):
    response = getattr(client, method)(path, status=405)
    assert response.headers["Allow"] == allow
    assert response.json["error"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
def test_wrong_method_on_read_only_routes_is_405(client, path):
    response = client.post(path, b"", status=405)
    assert "GET" in response.headers["Allow"].split(", ")


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
def test_allow_lists_head_where_get_is_allowed(client, path):
    assert client.post(path, b"", status=405).headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/nothing",
        "/broadcast",
        "/broadcast/",
        "/broadcast/x/extra",
        "/notify/x/queues",
        "/notify/x/queue/c",
        "/rpc/x",
        "/rpc/x/y/z",
        "/__init__",
        "/broadcast.py",
        "/health/extra",
    ],
)
def test_unknown_paths_are_404_json(client, path):
    response = client.post(path, b"", status=404)
    assert response.json["error"] == "not_found"
    assert response.content_type == "application/json"


def test_health(client):
    response = client.get("/health")
    assert response.json == {"broker": "ok"}
    assert client.head("/health").body == b""


def test_openapi_is_served(client):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert document["servers"][0]["url"] == "/"


def test_no_session_cookie_unless_a_session_is_used(client, exchange):
    assert "Set-Cookie" not in client.get("/health").headers
    assert "Set-Cookie" not in client.post(f"/broadcast/{exchange}", b"").headers


def test_mounted_under_a_prefix(gateway_app, responder, amqp, exchange):
    client = webtest.TestApp(gateway_app, lint=True, extra_environ={"SCRIPT_NAME": "/gateway"})
    assert client.get("/health").json == {"broker": "ok"}
    assert client.get("/openapi.json").json["servers"][0]["url"] == "/gateway"
    assert client.post(f"/broadcast/{exchange}", b"", status=202).json["exchange"] == exchange
    amqp.track(queues=[f"{exchange}.n.c"], exchanges=[f"{exchange}.n", f"{exchange}.r"])
    client.put(f"/notify/{exchange}.n/queues/c", status=201)
    client.post(f"/notify/{exchange}.n", b"", status=202)
    responder(f"{exchange}.r", "echo")
    assert client.post(f"/rpc/{exchange}.r/echo", b"mounted").body == b"mounted"
    assert client.get("/nothing", status=404).json["error"] == "not_found"


def test_unreachable_broker_is_503_with_retry_after(make_stack):
    stack = make_stack(
        amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", connect_timeout="1", retry_after="9"
    )
    client = webtest.TestApp(stack, lint=True)
    health = client.get("/health", status=503)
    assert health.json == {"broker": "unavailable"}
    assert health.headers["Retry-After"] == "9"
    for path in ("/broadcast/t.down", "/notify/t.down", "/rpc/t.down/key"):
        response = client.post(path, b"", status=503)
        assert response.json["error"] == "broker_unavailable"
        assert response.headers["Retry-After"] == "9"
    assert client.put("/notify/t.down/queues/c", status=503).json["error"] == "broker_unavailable"
