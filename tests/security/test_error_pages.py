"""Outside development a crash is a bare 500 page: no traceback, environ, cookie or setting.

Raw WSGI calls (no ``paste.throw_errors``, which WebTest always sets) into the
full stack over a temporary apps folder whose modules crash in the ways an
app module can: before answering, while streaming, inside a ``Routes`` view,
with secrets in the exception's message and in local variables.
"""

import logging

import pytest

from .conftest import AMQP_URL, KEYS, SESSION_SECRET
from .wsgi import TRACEBACK_MARKS, call

CRASHING_MODULES = {
    "boom": """
def application(environ, start_response):
    secret = environ["hutch.gateway"].settings.session["session.secret"]
    raise RuntimeError("boom with " + secret + " " + environ.get("HTTP_AUTHORIZATION", ""))
""",
    "midstream": """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial "
    raise KeyError(environ["hutch.gateway"].settings.amqp_url)
""",
    "view": """
from hutch.web.http import Route, Routes


def crash(request, gateway, exchange):
    config = gateway.settings
    return {}[repr(config) + request.cookies.get("hutch_session", "")]


application = Routes(Route("{exchange}", POST=crash))
""",
    "plain": """
def application(environ, start_response):
    raise RuntimeError("plain failure")
""",
}
AUTHORIZATION = f"Bearer {KEYS['admin'][0]}"
COOKIE_VALUE = "cookie-value-that-must-not-leak-0123456789"
LEAKS = [
    *TRACEBACK_MARKS,
    "RuntimeError",
    "KeyError",
    "boom with",
    SESSION_SECRET,
    AMQP_URL,
    "guest:guest",
    KEYS["admin"][0],
    COOKIE_VALUE,
    "HTTP_",
    "wsgi.",
    "SCRIPT_NAME",
    "CGI Variables",
    "WSGI Variables",
    "hutch.gateway",
    "amqp_url",
    "max_body_bytes",
    "Settings(",
]
REQUESTS = [("GET", "/boom"), ("GET", "/midstream"), ("POST", "/view/t.crash.1")]


def crash_stack(build_stack, tmp_path_factory, development):
    apps = tmp_path_factory.mktemp("crashing_apps")
    for name, source in CRASHING_MODULES.items():
        (apps / f"{name}.py").write_text(source)
    return build_stack(apps_directory=str(apps), development=development)


@pytest.fixture(scope="module")
def production(build_stack, tmp_path_factory):
    return crash_stack(build_stack, tmp_path_factory, development="false")


def crash(app, method, path):
    headers = [("Authorization", AUTHORIZATION), ("Cookie", f"hutch_session={COOKIE_VALUE}")]
    return call(app, method, path, headers, b"{}", script_name="")


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_a_crash_is_a_bare_500_page(production, method, path):
    result = crash(production, method, path)
    text = result.text
    if path == "/midstream":  # the 200 was already sent; the stream ends instead of leaking
        assert text.startswith("partial ")
    else:
        assert result.status == 500
        assert "the error is in its log" in text
    for leak in LEAKS:
        assert leak not in text, f"{path}: the error page shows {leak!r}:\n{text}"
    for name, value in result.headers:
        for leak in (SESSION_SECRET, KEYS["admin"][0], COOKIE_VALUE):
            assert leak not in value, f"{path}: response header {name} carries a secret"


def test_the_log_gets_the_traceback_but_no_credential_cookie_or_setting(production, caplog):
    """Paste's own report dumps every CGI/WSGI variable: Authorization, Cookie, the settings."""
    with caplog.at_level(logging.DEBUG):
        result = crash(production, "GET", "/plain")
    assert result.status == 500
    logged = caplog.text + result.errors
    assert "plain failure" in logged and "Traceback" in logged, "the crash was not logged"
    for leak in (SESSION_SECRET, KEYS["admin"][0], COOKIE_VALUE, "guest:guest", "HTTP_AUTHORIZATION"):
        assert leak not in logged, f"the log carries {leak!r}"


def test_development_shows_the_traceback(build_stack, tmp_path_factory):
    """The checks above can see a traceback: in development the same crash shows one."""
    development = crash_stack(build_stack, tmp_path_factory, development="true")
    result = crash(development, "GET", "/boom")
    assert result.status == 500
    assert "RuntimeError" in result.text and "boom.py" in result.text
