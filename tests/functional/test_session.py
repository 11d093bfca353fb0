"""Beaker sessions as the stack configures them: HttpOnly cookie, JSON, never pickle."""

import pytest
import webtest

VISIT = """
def application(environ, start_response):
    session = environ["beaker.session"]
    if "pair" in session:
        body = type(session["pair"]).__name__.encode()
    else:
        session["pair"] = (1, 2)
        session.save()
        body = b"saved"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.parametrize(
    "ini",
    [{}, {"session.data_serializer": "pickle", "session.httponly": "false"}],
    ids=["default", "weakened"],
)
def test_session_cookie_is_httponly_and_data_is_json(make_stack, ini):
    client = webtest.TestApp(make_stack({"visit.py": VISIT}, **ini), lint=True)
    first = client.get("/visit")
    assert first.text == "saved"
    cookie = first.headers["Set-Cookie"].strip()
    assert cookie.startswith("hutch_session=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    # JSON turns the tuple into a list on its way through the cookie; pickle would keep a tuple.
    assert client.get("/visit").text == "list"


def test_tampered_session_cookie_is_ignored(make_stack):
    client = webtest.TestApp(make_stack({"visit.py": VISIT}), lint=True)
    cookie = client.get("/visit").headers["Set-Cookie"].strip().split(";")[0]
    name, value = cookie.split("=", 1)
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    fresh = webtest.TestApp(client.app, lint=True)
    fresh.set_cookie(name, forged)
    assert fresh.get("/visit").text == "saved"
