"""Apache's own errors as the contract's JSON: the static documents, and TRACE answered by the routes."""

import json
import pathlib

import pytest
import webtest

from hutch import errors
from hutch.settings import parse_settings
from hutch.web.app import make_app
from hutch.web.server_errors import ERRORS_DIRECTORY, STATIC_ERRORS, error_document

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTINGS = {"session.secret": "unit-tests-server-errors-0123456789abcdef", "auth": "keys"}


def test_the_committed_documents_are_the_error_classes_json():
    files = sorted(path.name for path in ERRORS_DIRECTORY.iterdir())
    assert files == [f"{status}.json" for status in sorted(STATIC_ERRORS)]
    for status, error in STATIC_ERRORS.items():
        assert (ERRORS_DIRECTORY / f"{status}.json").read_bytes() == error_document(status)
        assert json.loads(error_document(status)) == {"error": error.code, "detail": error.detail}
        assert error.status == status
    assert isinstance(STATIC_ERRORS[400], errors.BadRequest)
    assert isinstance(STATIC_ERRORS[413], errors.PayloadTooLarge)


@pytest.fixture(scope="module")
def app():
    return webtest.TestApp(make_app(parse_settings(SETTINGS, here=str(ROOT))))


def refused(app, original, script_name="/gateway", status=405):
    """What the gateway answers for Apache's ErrorDocument redirect of a refused TRACE."""
    environ = {
        "SCRIPT_NAME": script_name,
        "REDIRECT_STATUS": str(status),
        "REDIRECT_URL": original,
        "REDIRECT_REQUEST_METHOD": "TRACE",
    }
    return app.get("/.method-not-allowed", extra_environ=environ, expect_errors=True)


@pytest.mark.parametrize(
    ("original", "allow"),
    [
        ("/gateway/health", "GET, HEAD"),
        ("/gateway/static/dashboard.css", "GET, HEAD"),
        ("/gateway/broadcast/scores", "POST"),  # no key needed to learn the methods, nothing published
        ("/gateway/notify/scores/queues/reporting", "PUT"),
        ("/gateway/dashboard/", "GET, HEAD, POST"),
    ],
)
def test_a_refused_trace_gets_the_routes_405_and_allow(app, original, allow):
    response = refused(app, original)
    assert response.status_int == 405
    assert response.headers["Allow"] == allow
    assert response.json["error"] == "method_not_allowed"


def test_a_refused_trace_on_an_unknown_path_is_a_404(app):
    response = refused(app, "/gateway/nothing/here")
    assert response.status_int == 404 and response.json["error"] == "not_found"


def test_a_refused_trace_outside_the_gateway_lists_what_static_files_allow(app):
    response = refused(app, "/index.html")
    assert response.status_int == 405 and response.headers["Allow"] == "GET, HEAD"


def test_the_gateway_mounted_at_the_root(app):
    response = refused(app, "/rpc/api/add", script_name="")
    assert response.status_int == 405 and response.headers["Allow"] == "POST"


def test_without_apaches_redirect_the_path_is_just_unknown(app):
    assert app.get("/.method-not-allowed", status=404).json["error"] == "not_found"
    other = refused(app, "/gateway/health", status=404)  # only Apache's 405 is re-dispatched
    assert other.status_int == 404
