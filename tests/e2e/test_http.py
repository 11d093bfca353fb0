"""The HTTP surface under mod_wsgi: names, limits, methods, routes, prefix, apps/ hardening, auth."""

import contextlib
import http.client
import json
import os
import pathlib
import socket

import pytest
import requests

from harness import amqp
from tests.e2e.client import (
    FULL_KEY,
    LIMITED_KEY,
    MAX_BODY_BYTES,
    PREFIX,
    Api,
    assert_error,
    assert_no_traceback,
)

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

APPS = pathlib.Path(__file__).resolve().parents[2] / "apps"


def raw_get(gateway, path):
    """GET ``path`` byte for byte (requests would normalise ``..`` and ``%2e``)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/broadcast/bad%20name"),
        ("POST", "/broadcast/" + "x" * 128),
        ("POST", "/broadcast/caf%C3%A9"),
        ("POST", "/notify/a$b"),
        ("PUT", "/notify/fine/queues/bad!consumer"),
        ("POST", "/rpc/fine/bad*key"),
        ("POST", "/rpc/bad,exchange/key"),
    ],
)
def test_bad_name_is_400(api, method, path):
    assert_error(api.request(method, path, data=b"x"), 400, "invalid_name")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/broadcast/amq.fanout"),
        ("POST", "/notify/amq.topic"),
        ("PUT", "/notify/amq.direct/queues/billing"),
        ("PUT", "/notify/fine/queues/amq.mine"),
        ("POST", "/rpc/amq.direct/key"),
        ("POST", "/rpc/fine/amq.key"),
    ],
)
def test_amq_names_are_403(api, method, path):
    assert_error(api.request(method, path, data=b"x"), 403, "reserved_name")


def test_longest_legal_name_is_accepted(api):
    name = "t." + "n" * 125
    try:
        assert api.post(f"/broadcast/{name}", data=b"x").status_code == 202
    finally:
        amqp.delete(exchanges=[name])


# --- bodies -----------------------------------------------------------------------


def test_body_over_max_body_bytes_is_413_json(api):
    name = amqp.unique("big")
    try:
        accepted = api.post(f"/broadcast/{name}", data=b"x" * MAX_BODY_BYTES)
        assert accepted.status_code == 202, accepted.text
        assert_error(
            api.post(f"/broadcast/{name}", data=b"x" * (MAX_BODY_BYTES + 1)), 413, "payload_too_large"
        )
        chunked = iter([b"x" * MAX_BODY_BYTES, b"x"])
        assert_error(api.post(f"/broadcast/{name}", data=chunked), 413, "payload_too_large")
    finally:
        amqp.delete(exchanges=[name])


def test_huge_body_is_refused_by_apache_without_a_traceback(api):
    response = api.post(f"/broadcast/{amqp.unique('big')}", data=b"x" * (4 * MAX_BODY_BYTES))
    assert_error(response, 413, "payload_too_large")  # Apache's error document: the contract's JSON
    assert_no_traceback(response)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/broadcast/t.any", "POST"),
        ("/notify/t.any/queues/billing", "PUT"),
        ("/health", "GET, HEAD"),
        ("/events/t.any", "GET, HEAD"),
        ("/dashboard/t.any", "GET, HEAD, POST"),
        ("/static/dashboard.css", "GET, HEAD"),
    ],
)
def test_trace_is_405_with_the_routes_allow_and_echoes_nothing(api, path, allow):
    response = api.request("TRACE", path, headers={"X-Trace-Me": "secret-cookie"})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow
    assert "secret-cookie" not in response.text and "e2e-full-access-key" not in response.text


def test_trace_on_an_unknown_path_is_404(api):
    assert_error(api.request("TRACE", "/nope"), 404, "not_found")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Amqp-Header-{Name}": "v"}, "a header name with braces"),
        ({"X-Big": "b" * 9000}, "a header field over 8190 bytes"),
    ],
)
def test_a_head_apache_cannot_read_is_400_json(api, headers, why):
    response = api.post(f"/broadcast/{amqp.unique('head')}", data=b"x", headers=headers)
    assert_error(response, 400, "bad_request")
    assert "header" in response.json()["detail"], why


# --- methods and routes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/broadcast/t.any", "POST"),
        ("PUT", "/notify/t.any", "POST"),
        ("DELETE", "/notify/t.any/queues/billing", "PUT"),
        ("GET", "/rpc/t.any/key", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(api, method, path, allow):
    response = api.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert allow in [value.strip() for value in response.headers["Allow"].split(",")]


@pytest.mark.parametrize(
    "path",
    ["/nope", "/broadcast", "/broadcast/", "/broadcast/t.a/extra", "/notify/t.a/queues", "/rpc/t.a"],
)
def test_unknown_route_is_404_json(api, path):
    assert_error(api.post(path, data=b"x"), 404, "not_found")
    assert_error(api.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["", "/"])
def test_the_mount_point_is_an_index_of_links(api, path):
    response = api.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["links"]["openapi"] == PREFIX + "/openapi.json"
    browser = api.get(path, headers={"Accept": "text/html"}, allow_redirects=False)
    if path == "":  # mod_wsgi-express sends /gateway to /gateway/ first
        assert browser.status_code == 301
        browser = api.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert browser.status_code == 303
    assert browser.headers["Location"].endswith(PREFIX + "/dashboard/")
    assert_error(api.post("/", data=b"x"), 405, "method_not_allowed")


def test_a_non_ascii_name_is_named_as_sent(api):
    body = assert_error(api.post("/broadcast/sc%C3%B6re", data=b"x"), 400, "invalid_name")
    assert "'scöre'" in body["detail"]


def test_health(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"broker": "ok"}


def test_openapi_document_is_served_as_json(anonymous):
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/broadcast/{exchange}" in document["paths"]


# --- the mount point ------------------------------------------------------------------


def test_gateway_answers_only_under_its_prefix(gateway):
    assert requests.get(gateway.url + "/health", timeout=10).status_code == 200
    for path in ("/health", "/gatewayx/health", "/broadcast/t.x"):
        response = requests.get(gateway.origin + path, timeout=10)
        assert response.status_code == 404, path
        assert_no_traceback(response)


def test_script_name_is_the_prefix(anonymous):
    """The gateway sees SCRIPT_NAME=/gateway and hands out URLs under it."""
    servers = anonymous.get("/openapi.json").json()["servers"]
    assert servers[0]["url"].endswith(PREFIX)


# --- apps/ is never served --------------------------------------------------------------


@pytest.fixture
def planted_files():
    """Files an editor or an operator might leave in apps/; removed after the test."""
    secret = b"PLANTED-SECRET-" + os.urandom(8).hex().encode()
    planted = []
    for name in ("notify.py~", "secrets.ini", ".env", "notes.txt"):
        path = APPS / name
        if path.exists():
            continue  # never touch a file someone else put there
        with open(path, "xb") as handle:
            handle.write(b"application = None  # " + secret + b"\n")
        planted.append(path)
    yield secret, [path.name for path in planted]
    for path in planted:
        path.unlink(missing_ok=True)


def test_nothing_in_apps_but_dispatched_modules_is_served(api, gateway, planted_files):
    secret, planted = planted_files
    before = sorted(path.name for path in APPS.iterdir())
    paths = [
        "/broadcast.py",
        "/health.py",
        "/notify.py~",
        "/notify.py%7E",
        "/__init__",
        "/__init__.py",
        "/__pycache__",
        "/secrets.ini",
        "/secrets",
        "/.env",
        "/notes.txt",
        "/notes",
        "/health/../broadcast.py",
    ] + [f"/{name}" for name in planted]
    for path in paths:
        for method in ("GET", "POST"):
            response = api.request(method, path, data=b"x" if method == "POST" else None)
            assert response.status_code == 404, (method, path, response.status_code)
            assert secret not in response.content, path
            assert b"import" not in response.content, path
    for path in ("/gateway/%2e%2e/production.ini", "/gateway/../production.ini", "/gateway/..%2fsetup.py"):
        status, body = raw_get(gateway, path)
        assert status in (400, 403, 404), (path, status)
        assert b"[app:main]" not in body and b"setup(" not in body, path
    # a request never writes into apps/ (Paste's urlparser used to add __init__.py)
    assert sorted(path.name for path in APPS.iterdir()) == before


# --- credentials reach the gateway through Apache ------------------------------------------


def test_authorization_header_reaches_the_gateway(gateway, anonymous):
    name = amqp.unique("auth")
    limited = Api(gateway.url, key=LIMITED_KEY)
    try:
        refused = assert_error(anonymous.post(f"/broadcast/{name}", data=b"x"), 401, "unauthorized")
        assert refused
        assert "WWW-Authenticate" in anonymous.post(f"/broadcast/{name}").headers
        assert limited.post(f"/broadcast/{name}", data=b"x").status_code == 202
        assert_error(limited.post(f"/notify/{name}", data=b"x"), 403, "forbidden")
        basic = requests.post(
            f"{gateway.url}/broadcast/{name}", data=b"x", auth=("limited", LIMITED_KEY), timeout=10
        )
        assert basic.status_code == 202
        assert anonymous.get("/health").status_code == 200  # health needs no key
    finally:
        amqp.delete(exchanges=[name])


def chunked_post(gateway, path, size, key=FULL_KEY):
    """POST ``size`` bytes with Transfer-Encoding: chunked over a raw socket; every byte of the answer."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as connection:
        head = (
            f"POST {gateway.prefix}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(head.encode())
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            for _ in range(size // len(chunk)):
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.sendall(b"0\r\n\r\n")
        answer = b""
        while data := connection.recv(65536):
            answer += data
    return answer


def test_a_chunked_body_far_over_every_limit_gets_one_clean_json_413(gateway):
    """Apache's LimitRequestBody must not cut a chunked body: mod_wsgi would answer 500 after its 413."""
    answer = chunked_post(gateway, f"/broadcast/{amqp.unique('big')}", 5 * 1024 * 1024)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:500]
    assert b"500 Internal Server Error" not in answer
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"] == "payload_too_large"
    assert "WSGI0126" not in gateway.logs()


def test_the_chunked_body_rule_adds_no_vary_header(api):
    assert "Vary" not in api.get("/health").headers
