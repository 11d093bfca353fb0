"""The error page, seen by a raw WSGI call: WebTest's ``paste.throw_errors`` would bypass it."""

import io
import wsgiref.util

import pytest

from hutch.web.app import ERROR_MESSAGE

BOOM = """
def application(environ, start_response):
    raise RuntimeError("boom-detail-4711 password=hunter2")
"""

VIEW = """
from hutch.web.http import Route, Routes


def explode(request, gateway):
    raise KeyError("view-detail-0815")


application = Routes(Route("", GET=explode))
"""


def raw_call(app, path, **environ):
    """Call ``app`` as a WSGI server would, with a minimal environ."""
    environ = {"PATH_INFO": path, "SCRIPT_NAME": "", "wsgi.errors": io.StringIO(), **environ}
    wsgiref.util.setup_testing_defaults(environ)
    assert "paste.throw_errors" not in environ
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = status, headers

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return (
        started["status"],
        dict(started["headers"]),
        body.decode("utf-8"),
        environ["wsgi.errors"].getvalue(),
    )


@pytest.mark.parametrize(("path", "detail"), [("/boom", "boom-detail-4711"), ("/view", "view-detail-0815")])
def test_production_500_shows_no_traceback(make_stack, caplog, path, detail):
    status, _, body, errors = raw_call(make_stack({"boom.py": BOOM, "view.py": VIEW}), path)
    assert status.startswith("500 ")
    assert ERROR_MESSAGE in body
    for leak in (detail, "hunter2", "Traceback", "RuntimeError", "KeyError", 'File "', ".py"):
        assert leak not in body
    assert detail in errors + caplog.text  # the error is in the log instead


def test_production_500_log_holds_no_credentials(make_stack, caplog):
    stack = make_stack(
        {"boom.py": BOOM},
        amqp_url="amqp://guest:amqp-pw-SECRET@127.0.0.1:5672/%2F",
        **{"session.secret": "session-SECRET-0123456789abcdef0123456789"},
    )
    _, _, _, errors = raw_call(
        stack, "/boom", HTTP_AUTHORIZATION="Bearer api-key-SECRET", HTTP_COOKIE="hutch_session=cookie-SECRET"
    )
    logged = errors + caplog.text
    assert "boom-detail-4711" in logged
    assert "SECRET" not in logged


@pytest.mark.parametrize(("path", "detail"), [("/boom", "boom-detail-4711"), ("/view", "view-detail-0815")])
def test_development_500_shows_the_traceback(make_stack, path, detail):
    status, _, body, _ = raw_call(make_stack({"boom.py": BOOM, "view.py": VIEW}, development="true"), path)
    assert status.startswith("500 ")
    assert detail in body
    assert "Traceback" in body or "File " in body


def test_hutch_errors_stay_json_outside_webtest(make_stack):
    status, headers, _, _ = raw_call(make_stack({"boom.py": BOOM}), "/nothing")
    assert status.startswith("404 ")
    assert headers["Content-Type"] == "application/json"


def test_environ_without_script_name_is_served(make_stack):
    """PEP 3333 lets a server omit SCRIPT_NAME when it is empty (the gateway at the root)."""
    environ = {"PATH_INFO": "/boom-free", "wsgi.errors": io.StringIO()}
    wsgiref.util.setup_testing_defaults(environ)
    assert "SCRIPT_NAME" not in environ
    app = make_stack({"boom.py": BOOM})
    started = {}
    b"".join(app(environ, lambda status, headers, exc_info=None: started.update(status=status)))
    assert started["status"].startswith("404 ")
