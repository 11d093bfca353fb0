"""The OpenAPI document: valid OpenAPI 3.0, faithful to the contract and to the code.

The routes and statuses below are copied from the contract (docs/http.md) by hand on
purpose: the test must fail when the document drifts from the contract, so
it cannot derive its expectations from the document.  Error codes come from
the source of ``hutch/errors.py``, read independently of ``hutch.contract``.
"""

import ast
import json
import pathlib
import re
import sys

import pytest
import webtest
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from hutch import messages
from hutch.auth.policy import IDIOMS
from hutch.contract import openapi
from hutch.contract.parameters import MESSAGE_BODY_CONTENT
from hutch.contract.schemas import NAME_PATTERN, SCHEMAS
from hutch.names import NAME
from hutch.settings import parse_settings
from hutch.web.app import make_app
from hutch.web.dispatch import load_app_modules

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "unit-tests-openapi-secret-0123456789abcdef"
LIMITED_KEY = "openapi-limited-key-0123456789"  # may broadcast to t.* only
SETTINGS = {
    "session.secret": SECRET,
    "auth": "keys",
    "auth.key.limited": LIMITED_KEY,
    "auth.permissions.limited": "broadcast:t.*",
}

CONTRACT_ROUTES = [
    ("post", "/broadcast/{exchange}", {"202"}),
    ("post", "/notify/{exchange}", {"202", "409"}),
    ("put", "/notify/{exchange}/queues/{consumer}", {"200", "201"}),
    ("post", "/rpc/{exchange}/{routing_key}", {"200", "503", "504"}),
    ("get", "/events/{exchange}", {"200"}),
    ("get", "/dashboard/{exchange}", {"200"}),
    ("get", "/health", {"200", "503"}),
    ("get", "/openapi.json", {"200"}),
    ("get", "/", {"200", "303"}),
    ("get", "/metrics", {"200"}),
    ("post", "/broadcast/{exchange}/batch", {"200", "400", "413"}),
    ("post", "/notify/{exchange}/batch", {"200", "400", "413"}),
    ("put", "/notify/{exchange}/queues/{consumer}/push", {"200", "201", "400"}),
    ("get", "/notify/{exchange}/queues/{consumer}/push", {"200", "404"}),
    ("delete", "/notify/{exchange}/queues/{consumer}/push", {"204", "404"}),
    ("post", "/notify/{exchange}/queues/{consumer}/push/rotate-secret", {"200", "404"}),
    ("get", "/notify/{exchange}/queues/{consumer}/dead-letters", {"200"}),
    ("delete", "/notify/{exchange}/queues/{consumer}/dead-letters", {"200"}),
    ("post", "/notify/{exchange}/queues/{consumer}/dead-letters/redeliver", {"200"}),
    ("put", "/rpc/{exchange}/{routing_key}/responder", {"200", "201", "400"}),
    ("get", "/rpc/{exchange}/{routing_key}/responder", {"200", "404"}),
    ("delete", "/rpc/{exchange}/{routing_key}/responder", {"204", "404"}),
]
NAMED_ROUTES = [(method, path) for method, path, _ in CONTRACT_ROUTES if "{" in path]
# The dashboard's own pages, forms and assets: served, so documented, but not among the contract's API routes.
BROWSER_ROUTES = {
    ("get", "/dashboard/"),
    ("post", "/dashboard/"),
    ("post", "/dashboard/{exchange}"),
    ("get", "/dashboard/{exchange}/ticket"),
    ("get", "/static/{name}"),
    ("get", "/subscriptions/"),
    ("post", "/subscriptions/"),
}
# The browsable reference of this document: open, as the document is.
REFERENCE_ROUTES = {("get", "/reference"), ("get", "/reference/{name}")}
PUBLISHING_ROUTES = [
    ("post", "/broadcast/{exchange}"),
    ("post", "/notify/{exchange}"),
    ("post", "/rpc/{exchange}/{routing_key}"),
]


def codes_in_sources():
    """``{code: status}`` for every error class of ``hutch/`` and ``apps/`` that sets its own ``code``.

    Read from the source, so an error class added anywhere the gateway answers from (not only
    hutch/errors.py) must be documented.  ``hutch/contract/`` is left out: it is what is tested.
    """
    classes = {}
    for path in sorted([*ROOT.joinpath("hutch").rglob("*.py"), *ROOT.joinpath("apps").glob("*.py")]):
        if ROOT / "hutch" / "contract" in path.parents:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                fields = {
                    target.id: statement.value.value
                    for statement in node.body
                    if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                    for target in statement.targets
                    if isinstance(target, ast.Name)
                }
                parent = node.bases[0].id if node.bases and isinstance(node.bases[0], ast.Name) else None
                classes[node.name] = (fields, parent)

    def field(name, key):
        while name in classes:
            fields, parent = classes[name]
            if key in fields:
                return fields[key]
            name = parent
        return None

    return {
        fields["code"]: field(name, "status")
        for name, (fields, _parent) in classes.items()
        if "code" in fields and isinstance(field(name, "status"), int)
    }


ERROR_CODES = codes_in_sources()


@pytest.fixture(scope="module")
def doc():
    return openapi.document("/gateway")


@pytest.fixture(scope="module")
def app():
    settings = parse_settings(SETTINGS, here=str(ROOT))
    return webtest.TestApp(make_app(settings))


def deref(doc, node):
    """Follow a local ``$ref`` (``#/components/...``) to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(doc, method, path):
    return doc["paths"][path][method]


def error_enum(doc, response):
    """The error codes a documented JSON error response may carry."""
    schema = deref(doc, response)["content"]["application/json"]["schema"]
    for part in schema.get("allOf", []):
        if "$ref" not in part:  # the narrowing beside the shared Error schema
            return set(part["properties"]["error"]["enum"])
    return set(deref(doc, schema)["properties"]["error"]["enum"])


def header_schema(doc, method, path, name):
    for parameter in operation(doc, method, path)["parameters"]:
        parameter = deref(doc, parameter)
        if parameter["in"] == "header" and parameter["name"].lower() == name:
            return parameter["schema"]
    raise AssertionError(f"no header {name}")


def header_names(doc, method, path):
    names = set()
    for parameter in operation(doc, method, path)["parameters"]:
        parameter = deref(doc, parameter)
        if parameter["in"] == "header":
            names.add(parameter["name"].lower())
    return names


# --- the document is valid OpenAPI 3.0 -----------------------------------------


def test_document_is_valid_openapi_3_0(doc):
    assert doc["openapi"] == "3.0.3"
    validate(doc, cls=OpenAPIV30SpecValidator)


def test_document_is_json_serialisable_and_each_call_has_its_own_server():
    first, second = openapi.document("/a"), openapi.document("")
    json.dumps(first)
    assert first["servers"][0]["url"] == "/a"
    assert second["servers"][0]["url"] == "/"
    assert "servers" not in openapi.BASE


# --- every route of the contract, and nothing else --------------------------------


def test_paths_and_methods_are_the_contracts_and_the_dashboards_pages(doc):
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    contract = {(method, path) for method, path, _ in CONTRACT_ROUTES}
    assert contract <= documented
    assert documented - contract == BROWSER_ROUTES | REFERENCE_ROUTES
    for method, path in BROWSER_ROUTES:
        assert operation(doc, method, path)["tags"] == ["dashboard UI"]
    for method, path in REFERENCE_ROUTES:
        assert operation(doc, method, path)["security"] == []


@pytest.mark.parametrize(("method", "path", "statuses"), CONTRACT_ROUTES)
def test_each_route_documents_the_contracts_statuses(doc, method, path, statuses):
    responses = operation(doc, method, path)["responses"]
    assert statuses <= set(responses)
    assert "405" in responses
    assert "Allow" in deref(doc, responses["405"])["headers"]


@pytest.mark.parametrize(("method", "path"), NAMED_ROUTES)
def test_name_parameters_carry_the_contracts_pattern(doc, method, path):
    names = re.findall(r"{(\w+)}", path)
    parameters = [deref(doc, p) for p in operation(doc, method, path)["parameters"]]
    in_path = {p["name"]: p for p in parameters if p["in"] == "path"}
    assert set(in_path) == set(names)
    for parameter in in_path.values():
        assert parameter["required"] is True
        assert parameter["schema"]["pattern"] == "^[A-Za-z0-9_.:-]{1,127}$"
    responses = operation(doc, method, path)["responses"]
    assert "invalid_name" in error_enum(doc, responses["400"])
    assert "reserved_name" in error_enum(doc, responses["403"])


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "score_updates",
        "notify.patient.add",
        "A-z:0_9.x",
        "x" * 127,
        "x" * 128,
        "",
        "a/b",
        "a b",
        "é",
        "a\n",
    ],
)
def test_name_pattern_agrees_with_the_gateways_check(name):
    # ECMA-262 ^...$ anchor the whole string, as fullmatch does.
    assert bool(re.fullmatch(NAME_PATTERN[1:-1], name)) == bool(NAME.fullmatch(name))


@pytest.mark.parametrize(("method", "path"), PUBLISHING_ROUTES)
def test_publishing_routes_document_the_message_mapping(doc, method, path):
    headers = header_names(doc, method, path)
    assert {"content-encoding", "idempotency-key", "x-correlation-id"} <= headers
    for name in ("content-encoding", "idempotency-key", "x-correlation-id"):
        schema = header_schema(doc, method, path, name)
        # hutch.messages: printable ASCII, an AMQP short string
        assert schema["maxLength"] == messages.SHORTSTR_MAX
        assert schema["pattern"] == "^[\\x20-\\x7e]*$"
    family = operation(doc, method, path)["x-hutch-header-family"]
    assert family["prefix"] == "X-Amqp-Header-"
    assert family["maxHeaders"] == messages.MAX_HEADERS
    assert family["schema"]["maxLength"] == messages.MAX_HEADER_VALUE
    assert "X-Amqp-Header-" in operation(doc, method, path)["description"]
    body = operation(doc, method, path)["requestBody"]
    # concrete media types that generators accept, bytes of any type first; the same constant for all
    assert body["content"] is MESSAGE_BODY_CONTENT
    assert next(iter(body["content"])) == "application/octet-stream" and "*/*" not in body["content"]
    assert "max_body_bytes" in body["description"] and "Content-Type" in body["description"]
    responses = operation(doc, method, path)["responses"]
    assert error_enum(doc, responses["413"]) == {"payload_too_large"}
    assert "invalid_header" in error_enum(doc, responses["400"])


def test_broadcast_and_notify_answer_the_contracts_json(doc):
    broadcast = operation(doc, "post", "/broadcast/{exchange}")["responses"]["202"]
    schema = deref(doc, broadcast["content"]["application/json"]["schema"])
    assert set(schema["required"]) == {"message_id", "exchange", "routed"}
    assert schema["properties"]["routed"]["type"] == "boolean"
    notify = operation(doc, "post", "/notify/{exchange}")["responses"]
    schema = deref(doc, notify["202"]["content"]["application/json"]["schema"])
    assert set(schema["required"]) == {"message_id", "exchange"}
    assert "unroutable" in error_enum(doc, notify["409"])
    assert "precondition_failed" in error_enum(doc, notify["409"])


def test_rpc_documents_timeout_header_and_outcomes(doc):
    rpc = operation(doc, "post", "/rpc/{exchange}/{routing_key}")
    assert "x-timeout" in header_names(doc, "post", "/rpc/{exchange}/{routing_key}")
    responses = rpc["responses"]
    assert "http_status" in responses["200"]["description"]
    assert next(iter(responses["200"]["content"])) == "application/octet-stream"  # parsed as bytes
    assert "*/*" not in responses["200"]["content"] and "*/*" not in responses["default"]["content"]
    assert set(responses["200"]["headers"]) == {"Content-Encoding", "X-Amqp-Content-Encoding"}
    assert error_enum(doc, responses["504"]) == {"timeout"}
    assert {"no_responder", "broker_unavailable"} == error_enum(doc, responses["503"])
    retry_after = responses["503"]["headers"]["Retry-After"]
    assert not retry_after.get("required")  # no_responder comes without it


def test_events_and_dashboard_media_types(doc):
    events = operation(doc, "get", "/events/{exchange}")
    assert set(events["responses"]["200"]["content"]) == {"text/event-stream"}
    assert "last-event-id" in header_names(doc, "get", "/events/{exchange}")
    dashboard = operation(doc, "get", "/dashboard/{exchange}")
    assert set(dashboard["responses"]["200"]["content"]) == {"text/html"}


def test_health_answers_with_retry_after_when_unavailable(doc):
    responses = operation(doc, "get", "/health")["responses"]
    ok = deref(doc, responses["200"]["content"]["application/json"]["schema"])
    down = deref(doc, responses["503"]["content"]["application/json"]["schema"])
    assert ok["properties"]["broker"]["enum"] == ["ok"]
    assert down["properties"]["broker"]["enum"] == ["unavailable"]
    assert responses["503"]["headers"]["Retry-After"]["required"] is True


def test_api_keys_by_bearer_or_basic(doc):
    schemes = doc["components"]["securitySchemes"]
    http = {(s["type"], s["scheme"]) for s in schemes.values() if s["type"] == "http"}
    assert http == {("http", "bearer"), ("http", "basic")}
    assert doc["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    session = schemes["dashboardSession"]
    assert (session["type"], session["in"], session["name"]) == ("apiKey", "cookie", "hutch_session")


@pytest.mark.parametrize(("method", "path", "_statuses"), CONTRACT_ROUTES)
def test_every_route_but_health_and_openapi_needs_a_key(doc, method, path, _statuses):
    op = operation(doc, method, path)
    if path in ("/health", "/openapi.json", "/"):
        assert op["security"] == []
        assert "401" not in op["responses"]
        return
    if path in ("/events/{exchange}", "/dashboard/{exchange}"):  # EventSource sends no header
        assert op["security"] == [*doc["security"], {"dashboardSession": []}]
    else:
        assert "security" not in op  # the document's: Bearer or Basic
    assert op["x-hutch-permission"].split(":")[0] in IDIOMS
    assert error_enum(doc, op["responses"]["401"]) == {"unauthorized"}
    assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    assert "forbidden" in error_enum(doc, op["responses"]["403"])


# --- error codes -------------------------------------------------------------


def test_error_classes_were_read_from_the_sources():
    assert ERROR_CODES["timeout"] == 504 and ERROR_CODES["unroutable"] == 409
    assert ERROR_CODES["too_many_streams"] == 503  # hutch/events/server.py
    assert ERROR_CODES["invalid_message"] == 400  # apps/dashboard.py, a BadRequest
    assert len(ERROR_CODES) >= 17


def test_error_schema_lists_every_code_the_gateway_answers(doc):
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"}
    assert set(error["properties"]["error"]["enum"]) == set(ERROR_CODES)
    for code in ERROR_CODES:
        assert f"`{code}`" in error["description"]


def test_every_documented_error_response_has_the_codes_status(doc):
    seen = set()
    for item in doc["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                response = deref(doc, response)
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if "allOf" not in schema:
                    continue
                codes = error_enum(doc, response)
                seen |= codes
                assert {ERROR_CODES[code] for code in codes} == {int(status)}, (status, codes)
                if status == "503" and "broker_unavailable" in codes:
                    assert "Retry-After" in response["headers"]
    # Codes no documented route raises: the 404 of unknown paths, the 500 root, the
    # dashboard form's CSRF check; all are in the Error schema, checked above.
    assert set(ERROR_CODES) - seen <= {"not_found", "internal", "bad_csrf_token"}


# --- the served document ---------------------------------------------------------


def test_served_document_names_the_script_name_prefix(app):
    response = app.get("/openapi.json", extra_environ={"SCRIPT_NAME": "/gateway"})
    assert response.content_type == "application/json"
    assert response.json["servers"][0]["url"] == "/gateway"
    assert response.json == json.loads(json.dumps(openapi.document("/gateway")))


def test_served_document_at_the_root_has_server_slash(app):
    assert app.get("/openapi.json").json["servers"][0]["url"] == "/"


def test_served_document_under_a_deeper_prefix(app):
    response = app.get("/openapi.json", extra_environ={"SCRIPT_NAME": "/api/hutch"})
    assert response.json["servers"][0]["url"] == "/api/hutch"


@pytest.mark.parametrize(
    ("method", "url", "status", "path", "documented_method"),
    [
        ("post", "/broadcast/bad%21name", 400, "/broadcast/{exchange}", "post"),
        ("post", "/broadcast/amq.fanout", 403, "/broadcast/{exchange}", "post"),
        ("get", "/broadcast/score_updates", 405, "/broadcast/{exchange}", "post"),
        ("put", "/notify/x/queues/" + "c" * 128, 400, "/notify/{exchange}/queues/{consumer}", "put"),
        ("get", "/rpc/api/add_patient", 405, "/rpc/{exchange}/{routing_key}", "post"),
        ("post", "/health", 405, "/health", "get"),
        ("delete", "/openapi.json", 405, "/openapi.json", "get"),
        ("post", "/broadcast/t.openapi", 401, "/broadcast/{exchange}", "post"),
        ("post", "/notify/t.openapi", 401, "/notify/{exchange}", "post"),
        ("put", "/notify/t.openapi/queues/c", 401, "/notify/{exchange}/queues/{consumer}", "put"),
        ("post", "/rpc/t.openapi/r", 401, "/rpc/{exchange}/{routing_key}", "post"),
        ("post", "/broadcast/other", 403, "/broadcast/{exchange}", "post"),
        ("post", "/notify/t.openapi", 403, "/notify/{exchange}", "post"),
        ("get", "/dashboard/t.openapi", 401, "/dashboard/{exchange}", "get"),  # a script: JSON
        ("get", "/dashboard/amq.x", 403, "/dashboard/{exchange}", "get"),
        ("get", "/static/nothing.js", 404, "/static/{name}", "get"),
    ],
)
def test_real_errors_match_the_documented_responses(app, doc, method, url, status, path, documented_method):
    """Errors the gateway gives before touching the broker, checked against the document.

    403s are sent with the limited key (broadcast to ``t.*`` only); 401s without a key.
    """
    headers = {"Authorization": f"Bearer {LIMITED_KEY}"} if status == 403 and "amq." not in url else {}
    headers["Accept"] = "application/json"
    response = getattr(app, method)(url, headers=headers, status=status)
    documented = operation(doc, documented_method, path)["responses"][str(status)]
    assert response.json["error"] in error_enum(doc, documented)
    assert set(response.json) == {"error", "detail"}
    for header in deref(doc, documented).get("headers", {}):
        assert header in response.headers


@pytest.mark.parametrize(
    ("code", "only_on"),
    [
        ("timeout", {("post", "/rpc/{exchange}/{routing_key}")}),
        ("no_responder", {("post", "/rpc/{exchange}/{routing_key}")}),
        ("unroutable", {("post", "/notify/{exchange}")}),
        (
            "nacked",
            {
                ("post", "/broadcast/{exchange}"),
                ("post", "/notify/{exchange}"),
                ("post", "/dashboard/{exchange}"),
            },
        ),
        ("too_many_streams", {("get", "/events/{exchange}")}),
        (
            "bad_csrf_token",
            {("post", "/dashboard/{exchange}"), ("post", "/dashboard/"), ("post", "/subscriptions/")},
        ),
    ],
)
def test_outcomes_are_documented_only_where_they_happen(doc, code, only_on):
    where = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for response in op["responses"].values():
                schema = deref(doc, response).get("content", {}).get("application/json", {}).get("schema", {})
                if "allOf" in schema and code in error_enum(doc, response):
                    where.add((method, path))
    assert where == only_on


def test_a_browser_without_a_key_is_sent_to_the_login_form(app, doc):
    response = app.get("/dashboard/t.openapi", headers={"Accept": "text/html"}, status=303)
    assert response.headers["Location"].endswith("/dashboard/?next=t.openapi")
    assert "303" in operation(doc, "get", "/dashboard/{exchange}")["responses"]
    login = app.get("/dashboard/", headers={"Accept": "text/html"}, status=200)
    assert login.content_type == "text/html"
    assert "200" in operation(doc, "get", "/dashboard/")["responses"]


# --- what generic tools rely on ---------------------------------------------------


# RFC 9110 token characters: a header name with anything else is refused by HTTP servers (400).
HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def test_every_documented_header_name_is_a_legal_header_name(doc):
    names = []
    for item in doc["paths"].values():
        for op in item.values():
            names += [deref(doc, p)["name"] for p in op["parameters"] if deref(doc, p)["in"] == "header"]
            for response in op["responses"].values():
                names += list(deref(doc, response).get("headers", {}))
    assert names
    for name in names:
        assert HEADER_TOKEN.fullmatch(name), name


def test_the_web_servers_own_errors_are_documented_on_every_operation(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "bad_request" in error_enum(doc, responses["400"]), (method, path)
            assert error_enum(doc, responses["408"]) == {"request_timeout"}, (method, path)
            assert error_enum(doc, responses["413"]) == {"payload_too_large"}, (method, path)
            assert error_enum(doc, responses["414"]) == {"uri_too_long"}, (method, path)


def test_rpc_marks_its_responder_outcomes_as_expected_answers(doc):
    rpc = operation(doc, "post", "/rpc/{exchange}/{routing_key}")
    assert rpc["x-hutch-expected-errors"] == ["no_responder", "timeout"]
    assert "no_responder" in error_enum(doc, rpc["responses"]["503"])
    assert "timeout" in error_enum(doc, rpc["responses"]["504"])
    assert "expected answer" in deref(doc, rpc["responses"]["503"])["description"]
    # only the call has such answers: a broker failure is never expected
    for item in doc["paths"].values():
        for op in item.values():
            assert "broker_unavailable" not in op.get("x-hutch-expected-errors", [])


def test_dashboard_forms_have_exactly_the_fields_the_dashboard_takes():
    load_app_modules(str(ROOT / "apps"))
    dashboard = sys.modules["hutch_apps.dashboard"]
    forms = {"DashboardForm": dashboard.ACT_FIELDS, "BroadcastForm": dashboard.PUBLISH_FIELDS}
    for name, fields in forms.items():
        schema = SCHEMAS[name]
        assert set(schema["properties"]) == fields
        assert schema["additionalProperties"] is False  # the dashboard refuses any other field


def test_the_login_forms_next_is_any_string_as_the_dashboard_takes_it(doc):
    """The dashboard ignores a ``next`` that is not an exchange name, so the document must allow any."""
    parameters = operation(doc, "get", "/dashboard/")["parameters"]
    (next_parameter,) = [p for p in parameters if p["name"] == "next"]
    assert next_parameter["schema"] == {"type": "string"}
