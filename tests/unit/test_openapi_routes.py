"""The OpenAPI document against the route table and the running WSGI app.

Every route of ``apps/`` is documented under its operation id, nothing else
is (but the event tier's one path), and every error a documented operation
lists is one the route answers: each is provoked here by a WebTest request,
or named in ``ELSEWHERE`` with the suite that provokes it (a broker,
Redis or the web server must misbehave for it).
"""

import re

import pytest
import webtest

from hutch.contract import openapi
from hutch.contract.responses import SERVER_ERRORS
from hutch.settings import parse_settings
from hutch.web.app import make_app
from hutch.web.dispatch import load_app_modules, route_table

from .test_openapi import ROOT, deref, error_enum

SECRET = "unit-tests-openapi-routes-secret-0123456789"
LIMITED_KEY = "routes-limited-key-0123456789"  # may broadcast to t.* only
FULL_KEY = "routes-full-key-0123456789abc"  # may do everything
SETTINGS = {
    "session.secret": SECRET,
    "auth": "keys",
    "auth.key.limited": LIMITED_KEY,
    "auth.permissions.limited": "broadcast:t.*",
    "auth.key.full": FULL_KEY,
    "auth.permissions.full": "*",
    "max_body_bytes": "1024",
    "max_batch_bytes": "1024",
}
MAX_BODY = 1024

# Errors the WSGI app cannot be made to answer without a broker, Redis or Apache misbehaving: the
# suites that provoke them.  A code documented on a route must be provoked here or listed here.
# The web server's own errors (documented on every operation) are tests/e2e test_apache_system's.
ELSEWHERE = {
    "broker_unavailable": "tests/faults",
    "nacked": "tests/faults test_memory_alarm",
    "precondition_failed": "tests/functional test_broadcast, test_notify",
    "unroutable": "tests/functional test_notify",
    "no_responder": "tests/functional test_rpc",
    "timeout": "tests/functional test_rpc",
    "idempotency_key_reused": "tests/functional test_idempotency",
    "idempotency_in_flight": "tests/functional test_idempotency",
    "idempotency_unavailable": "tests/e2e test_idempotency",
    "session_store_unavailable": "tests/security test_redis_sessions",
    "too_many_streams": "the event tier, tests/dashboard test_event_tier",
    "invalid_message": "tests/dashboard test_pages",
    "forbidden@/dashboard/": "a wrong key at the login form, tests/dashboard test_pages",
    "invalid_subscription": "tests/functional test_push",
    "target_refused": "tests/functional test_push",
    "no_subscription": "tests/functional test_push",
    "subscription_store_unavailable": "tests/functional test_push",
    "forbidden@/subscriptions/": "a key without register on the exchange, tests/functional test_push",
}


@pytest.fixture(scope="module")
def apps():
    return load_app_modules(str(ROOT / "apps"))


@pytest.fixture(scope="module")
def doc():
    return openapi.document("/gateway")


@pytest.fixture(scope="module")
def app():
    return webtest.TestApp(make_app(parse_settings(SETTINGS, here=str(ROOT))))


def operations(doc):
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


# --- the route table and the document -------------------------------------------------


def test_every_route_is_documented_under_its_operation_id(apps, doc):
    served = set()
    for path, method, _route, view in route_table(apps):
        assert doc["paths"][path][method.lower()]["operationId"] == view.operation_id
        served.add((path, method.lower()))
    documented = {(path, method) for path, method, _ in operations(doc)}
    assert documented - served == {(openapi.EVENTS_PATH, "get")}  # served by the event tier


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_the_permission_documented_is_the_routes(apps, doc):
    for path, method, route, _view in route_table(apps):
        documented = doc["paths"][path][method.lower()].get("x-hutch-permission", "")
        assert [part.split(":")[0] for part in documented.split()] == list(route.permissions[method])


def test_a_route_without_pages_documents_no_html_error(apps, doc):
    """The dashboard's 405 comes from the router before any page could: JSON only; a bad name in a
    dashboard path is found once its route is known: a page for a browser."""
    for path, method, op in operations(doc):
        for status in ("405",):
            assert "text/html" not in deref(doc, op["responses"][status])["content"], (method, path)
    page = doc["paths"]["/dashboard/{exchange}"]["get"]["responses"]
    assert set(page["401"]["content"]) == {"application/json", "text/html"}
    assert set(page["400"]["content"]) == {"application/json", "text/html"}
    assert "`invalid_name`" in page["400"]["description"].rsplit("HTML page", 1)[1]
    broadcast = doc["paths"]["/broadcast/{exchange}"]["post"]["responses"]
    assert set(broadcast["400"]["content"]) == {"application/json"}


def test_the_served_assets_are_the_documented_ones(app, doc):
    (parameter,) = doc["paths"]["/static/{name}"]["get"]["parameters"]
    for name in parameter["schema"]["enum"]:
        app.get(f"/static/{name}", status=200)


def test_facts_in_the_prose_are_the_codes(doc):
    """No ``$name`` is left unsubstituted, and the limits read as the code enforces them."""
    text = str(doc)
    assert not re.search(r"\$[a-z_{]", text.replace("$ref", ""))
    assert "at most 16;" in doc["paths"]["/dashboard/"]["post"]["description"]


# --- every documented error can be provoked ---------------------------------------------


def fill(path, **values):
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "t.routes"), path)


# Following an exchange from the dashboard's index: code -> (exchange, headers).
FOLLOW = {
    "unauthorized": ("t.routes", {}),  # following needs a key
    "invalid_name": ("bad!name", {"Authorization": f"Bearer {FULL_KEY}"}),
    "reserved_name": ("amq.x", {"Authorization": f"Bearer {FULL_KEY}"}),
}


def provoke(app, path, method, code, raised):
    """Make the app answer ``code`` on the operation; return the response, or None if it cannot here.

    ``raised``: the codes the operation's view raises itself (not only the web server).
    """
    json = {"Accept": "application/json"}
    full = {**json, "Authorization": f"Bearer {FULL_KEY}"}
    request = getattr(app, method)
    names = re.findall(r"{(\w+)}", path)
    if code == "method_not_allowed":  # PATCH: no route has it
        return app.patch(fill(path), headers=full, expect_errors=True)
    if code == "invalid_name" and names:
        return request(fill(path, **{names[-1]: "bad!name"}), headers=full, expect_errors=True)
    if code == "reserved_name" and names:
        return request(fill(path, **{names[-1]: "amq.x"}), headers=full, expect_errors=True)
    if path == "/dashboard/" and method == "post" and code in FOLLOW:  # a form with the session's token
        login = app.get("/dashboard/", headers={"Accept": "text/html"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        exchange, headers = FOLLOW[code]
        form = {"csrf_token": token, "action": "follow", "exchange": exchange}
        return app.post("/dashboard/", form, headers={**json, **headers}, expect_errors=True)
    if code == "unauthorized":
        return request(fill(path), headers=json, expect_errors=True)
    if code == "forbidden" and path not in ("/dashboard/", "/subscriptions/"):  # forms: ELSEWHERE
        limited = {**json, "Authorization": f"Bearer {LIMITED_KEY}"}
        return request(fill(path, exchange="other"), headers=limited, expect_errors=True)
    if code == "not_found":
        return request(fill(path, name="nothing.js"), headers=full, expect_errors=True)
    if code in ("payload_too_large", "bad_request", "invalid_header") and code not in raised:
        return None  # the web server's answer on this route (apache/errors/)
    if code == "payload_too_large":
        body = b"x" * (3 * MAX_BODY + 4097)  # over a form's limit too
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return request(fill(path), params=body, headers={**full, **form}, expect_errors=True)
    if code == "invalid_header":
        headers = {**full, "X-Amqp-Header-Big": "x" * 4097}
        return request(fill(path), params=b"{}", headers=headers, expect_errors=True)
    if code == "invalid_batch":
        return request(fill(path), params=b"[]\n", headers=full, expect_errors=True)
    if code == "bad_csrf_token":
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return request(fill(path), params=b"", headers={**full, **form}, expect_errors=True)
    if code == "bad_request" and path.startswith("/dashboard"):
        return request(
            fill(path), params=b"x", headers={**full, "Content-Type": "text/plain"}, expect_errors=True
        )
    if code == "bad_request":  # a Content-Length that is not a size
        raw = webtest.TestRequest.blank(fill(path), method=method.upper(), headers=full)
        raw.environ["CONTENT_LENGTH"] = "-1"
        return webtest.TestApp(app.app, lint=False).do_request(raw, expect_errors=True)  # lint refuses it
    return None


def view_raises(apps):
    """``{(path, method): codes}`` the views raise themselves."""
    return {
        (path, method.lower()): {cls.code for cls in view.raises}
        for path, method, _, view in route_table(apps)
    }


def documented_errors(doc):
    for path, method, op in operations(doc):
        if path == openapi.EVENTS_PATH:  # not a WSGI route: tests/dashboard test_event_tier
            continue
        for status, response in op["responses"].items():
            schema = deref(doc, response).get("content", {}).get("application/json", {}).get("schema", {})
            if "allOf" in schema:
                for code in sorted(error_enum(doc, response)):
                    yield path, method, int(status), code


def test_every_documented_error_is_provoked_here_or_elsewhere(app, apps, doc):
    raised = view_raises(apps)
    unchecked = []
    for path, method, status, code in documented_errors(doc):
        response = provoke(app, path, method, code, raised[path, method])
        if response is None:
            server = code in {cls.code for cls in SERVER_ERRORS} and code not in raised[path, method]
            if not server and code not in ELSEWHERE and f"{code}@{path}" not in ELSEWHERE:
                unchecked.append((method, path, code))
            continue
        assert (response.status_int, response.json["error"]) == (status, code), (method, path)
    assert unchecked == []
