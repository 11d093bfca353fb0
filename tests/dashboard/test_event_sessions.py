"""The event servers' reading of the dashboard's session (``hutch.events.session``), with each store
the gateway offers: the signed, encrypted cookie and Redis (the shared one, database 1)."""

import re

import pytest

from hutch.events.session import SessionReader

from .conftest import KEYS, browser_client

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
STORES = {
    "cookie": {},
    "redis": {"session.type": "ext:redis", "session.url": "redis://127.0.0.1:6379/1"},
}


def logged_in_cookie(app, key_name):
    browser = browser_client(app, key=None)
    token = TOKEN.search(browser.get("/dashboard/").text).group(1)
    form = {"action": "login", "api_key": KEYS[key_name][0], "csrf_token": token}
    browser.post("/dashboard/", form, status=303)
    return browser, "; ".join(f"{name}={value}" for name, value in browser.cookies.items())


@pytest.mark.parametrize("store", sorted(STORES))
def test_the_session_gives_its_key_until_logout(make_stack, store):
    app = make_stack(**STORES[store])
    settings = app.gateway.settings
    reader = SessionReader(settings.session)
    browser, cookie = logged_in_cookie(app, "watcher")
    assert reader.carries_session(cookie)
    assert reader.key_of(cookie, settings.auth).name == "watcher"
    assert reader.key_of("hutch_session=forged", settings.auth) is None
    token = TOKEN.search(browser.get("/dashboard/").text).group(1)
    browser.post("/dashboard/", {"action": "logout", "csrf_token": token}, status=303)
    if store == "redis":  # deleted on the server: a copy of the old cookie is worth nothing
        assert reader.key_of(cookie, settings.auth) is None
    later = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    assert reader.key_of(later, settings.auth) is None


def test_a_session_whose_key_changed_gives_none(make_stack):
    app = make_stack()
    _browser, cookie = logged_in_cookie(app, "viewer")
    other = make_stack(**{"auth.key.viewer": "a-new-secret-for-the-viewer-0123456789"})
    reader = SessionReader(other.gateway.settings.session)
    assert reader.key_of(cookie, other.gateway.settings.auth) is None
    assert SessionReader(app.gateway.settings.session).key_of(cookie, app.gateway.settings.auth)
