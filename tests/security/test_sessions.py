"""Beaker sessions are signed, encrypted JSON cookies, HttpOnly, SameSite, Secure over https.

The stack is the real one (ErrorMiddleware, Beaker, dispatch) over a
temporary apps folder whose one module counts visits in the session, so the
cookie Beaker sets is what a dashboard page would get.
"""

import http.cookies
import json
import os
import re
import urllib.parse

import pytest
from beaker.session import CookieSession

from harness.amqp import BROADCAST, BoundQueue, delete
from hutch.settings import ConfigurationError, parse_settings

from .conftest import ROOT, bearer, raw_settings
from .wsgi import assert_no_traceback, call

PROBE = """
import json


def application(environ, start_response):
    session = environ["beaker.session"]
    session["visits"] = session.get("visits", 0) + 1
    session.save()
    body = json.dumps({"visits": session["visits"], "keys": sorted(session.keys())}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.fixture(scope="module")
def session_stack(build_stack, tmp_path_factory):
    apps = tmp_path_factory.mktemp("session_apps")
    (apps / "probe.py").write_text(PROBE)
    return build_stack(apps_directory=str(apps))


def visit(app, cookie=None, scheme="http"):
    headers = [("Cookie", f"hutch_session={cookie}")] if cookie is not None else []
    result = call(app, "GET", "/probe", headers, scheme=scheme, script_name="")
    assert_no_traceback(result)
    assert result.status == 200, result.text
    return result


def set_cookie(result):
    """The hutch_session morsel of the response's Set-Cookie, and the raw header."""
    headers = [value for key, value in result.headers if key.lower() == "set-cookie"]
    assert len(headers) == 1, result.headers
    cookie = http.cookies.SimpleCookie()
    cookie.load(headers[0])
    return cookie["hutch_session"], headers[0]


def attributes(header):
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


def test_cookie_is_httponly_samesite_lax(session_stack):
    morsel, header = set_cookie(visit(session_stack))
    assert "httponly" in attributes(header)
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"


def test_cookie_is_not_secure_over_plain_http(session_stack):
    """Else a browser on http:// would never send it back."""
    _, header = set_cookie(visit(session_stack, scheme="http"))
    assert "secure" not in attributes(header)


def test_cookie_is_secure_over_https(session_stack):
    _, header = set_cookie(visit(session_stack, scheme="https"))
    assert "secure" in attributes(header)


def test_session_round_trips_and_is_opaque(session_stack):
    morsel, _ = set_cookie(visit(session_stack))
    assert "visits" not in morsel.value and "_id" not in morsel.value  # encrypted, not readable JSON
    again = visit(session_stack, cookie=morsel.value)
    assert json.loads(again.body)["visits"] == 2


@pytest.mark.parametrize(
    "cookie",
    [
        "../../../../../../tmp/hutch-escape",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "0" * 40 + "../../x",  # looks signed, is not
        "garbage",
        "",
    ],
)
def test_crafted_cookies_start_a_fresh_session(session_stack, cookie):
    result = visit(session_stack, cookie=cookie)
    assert json.loads(result.body)["visits"] == 1
    assert not os.path.exists("/tmp/hutch-escape")


def test_a_tampered_cookie_is_not_trusted(session_stack):
    morsel, _ = set_cookie(visit(session_stack))
    value = morsel.value
    tampered = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    assert json.loads(visit(session_stack, cookie=tampered).body)["visits"] == 1


class Gadget:
    """Unpickling this creates a directory: proof that pickle ran attacker-chosen code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickled_session_is_never_unpickled(session_stack, tmp_path):
    """Even signed and encrypted with the real keys (a leaked secret), pickle data is not loaded."""
    marker = tmp_path / "unpickled"
    options = session_stack.gateway.settings.session
    request = {"cookie": ""}
    forged = CookieSession(
        request,
        key="hutch_session",
        validate_key=options["session.validate_key"],
        encrypt_key=options["session.encrypt_key"],
        data_serializer="pickle",
    )
    forged["visits"] = Gadget(str(marker))
    forged.save()
    cookie = http.cookies.SimpleCookie()
    cookie.load(request["cookie_out"])
    result = visit(session_stack, cookie=cookie["hutch_session"].value)
    assert not marker.exists(), "the session cookie was unpickled"
    assert json.loads(result.body)["visits"] == 1


@pytest.mark.parametrize("backend", ["file", "dbm"])
def test_backends_that_use_session_ids_as_paths_are_refused(backend, tmp_path):
    """Beaker's file and dbm backends build a path from the id in the cookie; the gateway keeps cookies."""
    raw = raw_settings(**{"session.type": backend, "session.data_dir": str(tmp_path)})
    with pytest.raises(ConfigurationError, match=r"session\.type"):
        parse_settings(raw, here=str(ROOT))


def test_session_settings_cannot_be_weakened():
    raw = raw_settings(**{"session.data_serializer": "pickle", "session.httponly": "false"})
    session = parse_settings(raw, here=str(ROOT)).session
    assert session["session.data_serializer"] == "json"
    assert session["session.httponly"] is True
    assert session["session.samesite"] == "Lax"
    assert len(session["session.validate_key"]) >= 32 and len(session["session.encrypt_key"]) >= 32


# --- the dashboard's forms: CSRF -------------------------------------------------------------

TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A browser session on the real stack's dashboard: its cookie, logged in by an API key header."""

    def __init__(self, app, authorization=None):
        self.app = app
        self.cookie = None
        self.authorization = authorization

    def request(self, method, path, form=None, accept="application/json"):
        headers = [("Accept", accept)]
        if self.authorization:
            headers.append(("Authorization", self.authorization))
        if self.cookie:
            headers.append(("Cookie", f"hutch_session={self.cookie}"))
        body = b""
        if form is not None:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            body = urllib.parse.urlencode(form).encode("ascii")
        result = call(self.app, method, path, headers, body)
        assert_no_traceback(result)
        for key, value in result.headers:
            if key.lower() == "set-cookie" and value.strip().startswith("hutch_session="):
                self.cookie = value.strip().split(";")[0].split("=", 1)[1]
        return result

    def token(self, path="/dashboard/"):
        page = self.request("GET", path, accept="text/html")
        assert page.status == 200, page.text[:500]
        return TOKEN_FIELD.search(page.body.decode()).group(1)


@pytest.fixture
def exchange(unique_name):
    name = unique_name("score_x")
    yield name
    delete(exchanges=[name])


def test_dashboard_forms_need_the_sessions_csrf_token(stack, exchange):
    browser = Browser(stack, bearer("admin"))
    token = browser.token()
    follow = {"action": "follow", "exchange": exchange}
    for bad in ({}, {"csrf_token": ""}, {"csrf_token": token[:-1]}, {"csrf_token": token + "x"}):
        result = browser.request("POST", "/dashboard/", {**follow, **bad})
        assert result.status == 403, result.text
        assert json.loads(result.body)["error"] == "bad_csrf_token"
    other = Browser(stack, bearer("admin")).token()  # another session's token
    assert browser.request("POST", "/dashboard/", {**follow, "csrf_token": other}).status == 403
    assert exchange not in browser.request("GET", "/dashboard/", accept="text/html").text
    assert browser.request("POST", "/dashboard/", {**follow, "csrf_token": token}).status in (200, 303)
    assert exchange in browser.request("GET", "/dashboard/", accept="text/html").text


def test_a_dashboard_broadcast_without_the_token_publishes_nothing(stack, exchange):
    browser = Browser(stack, bearer("admin"))
    token = browser.token(f"/dashboard/{exchange}")
    message = {"content_type": "application/json", "body": '{"score": 1}'}
    with BoundQueue(exchange, BROADCAST) as queue:
        forged = browser.request("POST", f"/dashboard/{exchange}", message)  # a cross-site form: no token
        assert forged.status == 403 and json.loads(forged.body)["error"] == "bad_csrf_token"
        assert queue.get(timeout=0.2) is None
        sent = browser.request("POST", f"/dashboard/{exchange}", {**message, "csrf_token": token})
        assert sent.status == 202, sent.text
        assert queue.get()[2] == b'{"score": 1}'
