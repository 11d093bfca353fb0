"""GET /: a browser is sent to the dashboard, an API client gets a JSON index of links."""

import pytest
import webtest


def test_a_browser_is_sent_to_the_dashboard(client):
    response = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, status=303)
    assert response.headers["Location"].endswith("/dashboard/")


def test_an_api_client_gets_links(client):
    for accept in ("application/json", "*/*", None):
        headers = {"Accept": accept} if accept else {}
        response = client.get("/", headers=headers, status=200)
        assert response.content_type == "application/json"
        links = response.json["links"]
        assert links["openapi"] == "/openapi.json"
        assert links["health"] == "/health"
        assert links["metrics"] == "/metrics"
        assert links["dashboard"] == "/dashboard/"
        assert links["broadcast"] == "/broadcast/{exchange}"


def test_links_follow_the_mount_point(gateway_app):
    client = webtest.TestApp(gateway_app, lint=True, extra_environ={"SCRIPT_NAME": "/gateway"})
    assert client.get("/").json["links"]["openapi"] == "/gateway/openapi.json"
    assert (
        client.get("/", headers={"Accept": "text/html"}, status=303)
        .headers["Location"]
        .endswith("/gateway/dashboard/")
    )


def test_the_root_without_a_slash_under_a_prefix(gateway_app):
    client = webtest.TestApp(gateway_app, lint=True, extra_environ={"SCRIPT_NAME": "/gateway"})
    assert client.get("").json["links"]["health"] == "/gateway/health"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_405(client, method):
    response = client.request("/", method=method, status=405)
    assert response.json["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET, HEAD"


def test_head_is_answered(client):
    assert client.head("/").body == b""
