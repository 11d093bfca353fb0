"""GET /reference: the browsable API reference (Swagger UI), its files served by the gateway
under the dashboard's Content-Security-Policy, open without an API key, under a mount point."""

import pathlib
import re

import pytest
import webtest

from hutch.contract.reference import ASSETS
from hutch.web.pages import SECURITY_HEADERS

pytestmark = pytest.mark.broker  # the stack connects to the real broker
PREFIX = "/gateway"
TEMPLATES = pathlib.Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def mounted(gateway_app):
    return webtest.TestApp(gateway_app, lint=True, extra_environ={"SCRIPT_NAME": PREFIX})


def test_the_page_loads_swagger_ui_from_the_gateway_on_its_own_document(mounted):
    page = mounted.get("/reference")
    assert page.content_type == "text/html"
    sources = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert sources == ["data:,", *(f"{PREFIX}/reference/{name}" for name in ASSETS)]  # no icon; css, scripts
    assert f'data-openapi-url="{PREFIX}/openapi.json"' in page.text
    assert "<script>" not in page.text  # no inline script: the policy would refuse it
    for name, value in SECURITY_HEADERS:
        assert page.headers[name] == value
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy


def test_each_file_is_served_with_its_type_an_etag_and_nosniff(mounted):
    for name, (content_type, _source) in ASSETS.items():
        response = mounted.get(f"/reference/{name}")
        assert response.content_type == content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(response.body) > 100
        mounted.get(f"/reference/{name}", headers={"If-None-Match": response.headers["ETag"]}, status=304)
    assert b"SwaggerUIBundle" in mounted.get("/reference/swagger-ui-bundle.js").body
    assert b".swagger-ui" in mounted.get("/reference/swagger-ui.css").body


def test_the_starting_script_is_the_repositorys(mounted):
    served = mounted.get("/reference/reference.js").body
    assert served == (TEMPLATES / "static" / "reference.js").read_bytes()
    assert b"data-openapi-url" in served


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/reference/index.html", 404),  # in the package, not served
        ("/reference/swagger-initializer.js", 404),  # the package's own, pointing at another site
        ("/reference/dashboard.js", 404),  # the dashboard's: /static only
        ("/reference/..", 404),
        ("/reference/%2e%2e%2fsetup.py", 400),
        ("/reference/a/b", 404),
        ("/reference/swagger-ui.css/", 404),
    ],
)
def test_nothing_else_is_served(client, path, status):
    response = client.get(path, status=status, expect_errors=True)
    assert response.content_type == "application/json"
    assert response.json["error"] in ("not_found", "invalid_name")


def test_only_get_and_head(client):
    response = client.post("/reference", status=405)
    assert response.headers["Allow"] == "GET, HEAD"
    assert client.head("/reference").body == b""
    assert client.head("/reference/swagger-ui.css").body == b""


def test_open_without_a_key_when_keys_are_on(make_stack):
    keys = {"auth.key.x": "reference-tests-secret-0123456789", "auth.permissions.x": "*"}
    stack = make_stack(auth="keys", templates_directory=str(TEMPLATES), **keys)
    client = webtest.TestApp(stack, lint=True)
    client.get("/broadcast/x", status=405)  # the stack is the keyed one ...
    client.post("/broadcast/x", status=401)
    assert client.get("/reference").status_int == 200  # ... and the reference, like /openapi.json, is open
    assert client.get("/reference/swagger-ui-bundle.js").status_int == 200


def test_the_document_lists_the_reference(client):
    paths = client.get("/openapi.json").json["paths"]
    assert paths["/reference"]["get"]["security"] == []
    assert set(paths["/reference/{name}"]["get"]["parameters"][0]["schema"]["enum"]) == set(ASSETS)


def test_the_index_links_the_reference(mounted):
    assert mounted.get("/").json["links"]["reference"] == f"{PREFIX}/reference"
