"""Dashboard sessions kept server-side in the real Redis: logout, revoked keys, two hosts, Redis down.

Every stack here is the real one (Beaker with ``session.type = ext:redis``)
against the shared Redis on 127.0.0.1:6379 (database 1, keys named by
random session ids, never flushed), except the tests that stop Redis: they
start a private redis-server of their own.
"""

import http.cookies
import json
import os
import re
import signal
import time
import urllib.parse

import pytest
import redis
from beaker.session import SignedCookie

from harness.redis_node import PrivateRedis
from hutch.auth import keyfile
from hutch.auth.session_store import InvalidSessionId, RedisSessionStore
from hutch.errors import SessionStoreUnavailable

from .conftest import KEYS, SESSION_SECRET, bearer
from .wsgi import assert_no_traceback, call

SHARED_REDIS = "redis://127.0.0.1:6379/1"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_FORM = 'id="login"'
RECORD = "beaker_cache:{}:session"

pytestmark = pytest.mark.redis


def redis_stack(build_stack, url=SHARED_REDIS, **overrides):
    return build_stack(**{"session.type": "ext:redis", "session.url": url, **overrides})


@pytest.fixture(scope="module")
def shared_redis():
    client = redis.Redis.from_url(SHARED_REDIS, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the shared Redis on 127.0.0.1:6379 is not running (bin/setup starts it): {exc}")
    return client


@pytest.fixture(scope="module")
def host_a(build_stack, shared_redis):
    return redis_stack(build_stack)


@pytest.fixture(scope="module")
def host_b(build_stack, shared_redis):
    """A second gateway host: its own stack and broker connection, the same secret and Redis."""
    return redis_stack(build_stack)


class Browser:
    """One browser's cookie jar (the hutch_session cookie) against one or more gateway stacks."""

    def __init__(self, app):
        self.app = app
        self.cookie = None

    def request(self, method, path, form=None, accept="text/html", app=None, cookie=None, headers=()):
        sent = [("Accept", accept), *headers]
        cookie = self.cookie if cookie is None else cookie
        if cookie:
            sent.append(("Cookie", f"hutch_session={cookie}"))
        body = b""
        if form is not None:
            sent.append(("Content-Type", "application/x-www-form-urlencoded"))
            body = urllib.parse.urlencode(form).encode("ascii")
        result = call(app or self.app, method, path, sent, body)
        assert_no_traceback(result)
        for key, value in result.headers:
            if key.lower() == "set-cookie" and value.strip().startswith("hutch_session="):
                morsel = http.cookies.SimpleCookie()
                morsel.load(value)
                self.cookie = morsel["hutch_session"].value
        return result

    def token(self, app=None):
        page = self.request("GET", "/dashboard/", app=app)
        assert page.status == 200, page.text[:500]
        return TOKEN_FIELD.search(page.text).group(1)

    def log_in(self, name, secret=None, app=None):
        secret = KEYS[name][0] if secret is None else secret
        form = {"action": "login", "api_key": secret, "csrf_token": self.token(app)}
        return self.request("POST", "/dashboard/", form, app=app)

    def log_out(self, app=None):
        return self.request(
            "POST", "/dashboard/", {"action": "logout", "csrf_token": self.token(app)}, app=app
        )

    def logged_in_as(self, app=None, cookie=None):
        """The key name the dashboard shows, or None when it shows the login form."""
        page = self.request("GET", "/dashboard/", app=app, cookie=cookie)
        assert page.status == 200, page.text[:500]
        if LOGIN_FORM in page.text:
            return None
        return re.search(r'class="key-name">([^<]+)<', page.text).group(1)

    @property
    def session_id(self):
        """The id inside the signed cookie, as Beaker reads it."""
        cookie = SignedCookie(SESSION_SECRET, input=f"hutch_session={self.cookie}")
        return cookie["hutch_session"].value


# --- where the session lives --------------------------------------------------------------------


def test_the_cookie_holds_a_signed_id_and_redis_the_session(host_a, shared_redis):
    browser = Browser(host_a)
    assert browser.log_in("watcher").status == 303
    session_id = browser.session_id
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)
    record = shared_redis.get(RECORD.format(session_id))
    assert record is not None
    assert b"watcher" not in record and b"api_key" not in record  # encrypted, and never pickled
    assert not record.startswith(b"\x80")  # a pickle starts with its protocol byte
    ttl = shared_redis.ttl(RECORD.format(session_id))
    assert 3600 < ttl <= 3600 + 120  # session.timeout, and Beaker's two minutes of grace
    assert browser.logged_in_as() == "watcher"


def test_login_gives_the_session_a_new_id_and_deletes_the_old_record(host_a, shared_redis):
    browser = Browser(host_a)
    browser.token()
    before = browser.session_id
    assert shared_redis.exists(RECORD.format(before))
    assert browser.log_in("watcher").status == 303
    assert browser.session_id != before
    assert not shared_redis.exists(RECORD.format(before))
    assert browser.logged_in_as(cookie=SignedCookie(SESSION_SECRET).value_encode(before)[1]) is None


# --- logout ends the session on the server -----------------------------------------------------


def test_a_cookie_saved_before_logout_gets_the_login_form(host_a, shared_redis):
    browser = Browser(host_a)
    browser.log_in("watcher")
    saved = browser.cookie
    saved_id = browser.session_id
    assert browser.logged_in_as(cookie=saved) == "watcher"
    assert browser.log_out().status == 303
    assert not shared_redis.exists(RECORD.format(saved_id))
    assert browser.logged_in_as(cookie=saved) is None  # the replay: the login form
    assert browser.session_id != saved_id  # and a new id: the old one is never taken up again
    assert not shared_redis.exists(RECORD.format(saved_id))
    page = browser.request("GET", "/dashboard/t.score_x.replay", cookie=saved)
    assert page.status == 303 and "/dashboard/?next=t.score_x.replay" in dict(page.headers)["Location"]
    ticket = browser.request(
        "GET", "/dashboard/t.score_x.replay/ticket", accept="application/json", cookie=saved
    )
    assert ticket.status == 401  # no ticket for the event stream either


# --- a revoked or removed key ends the sessions that logged in with it -------------------------


def test_a_key_removed_from_the_gateway_ends_its_sessions_at_the_next_request(
    host_a, build_stack, shared_redis
):
    """The gateway restarted without the key: the session is ended on the server, on every host."""
    without_watcher = redis_stack(build_stack, **{"auth.key.watcher": None, "auth.permissions.watcher": None})
    browser = Browser(host_a)
    browser.log_in("watcher")
    saved, saved_id = browser.cookie, browser.session_id
    assert browser.logged_in_as(app=without_watcher) is None
    assert not shared_redis.exists(RECORD.format(saved_id))
    assert browser.logged_in_as(app=host_a, cookie=saved) is None  # ended for the host that has it too


def test_hutch_keys_revoke_ends_a_running_gateways_sessions_within_seconds(
    build_stack, shared_redis, tmp_path
):
    """No restart: the gateway re-reads its key file, and the next request ends the session."""
    key_file = tmp_path / "api-keys"
    secret = keyfile.add_key(str(key_file), "rotating", ["watch:*"])
    gateway = redis_stack(build_stack, **{"auth.key_file": str(key_file)})
    browser = Browser(gateway)
    browser.log_in("rotating", secret=secret)
    assert browser.logged_in_as() == "rotating"
    saved_id = browser.session_id
    keyfile.revoke_key(str(key_file), "rotating")
    deadline = time.monotonic() + 5  # the gateway looks at the file at most once a second
    while browser.logged_in_as() == "rotating" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert browser.logged_in_as() is None
    assert not shared_redis.exists(RECORD.format(saved_id))


def test_a_key_given_a_new_secret_ends_the_sessions_of_the_old_one(host_a, build_stack):
    rotated = redis_stack(build_stack, **{"auth.key.watcher": "a-new-secret-for-the-watcher-key-0"})
    browser = Browser(host_a)
    browser.log_in("watcher")
    saved = browser.cookie
    assert browser.logged_in_as(app=rotated) is None
    assert browser.logged_in_as(app=host_a, cookie=saved) is None


def test_a_key_whose_permissions_changed_keeps_its_session_with_the_new_permissions(host_a, build_stack):
    narrowed = redis_stack(build_stack, **{"auth.permissions.watcher": "watch:t.other.*"})
    browser = Browser(host_a)
    browser.log_in("watcher")
    assert browser.logged_in_as(app=narrowed) == "watcher"
    refused = browser.request("GET", "/dashboard/t.score_x.narrow", app=narrowed)
    assert refused.status == 403
    assert browser.request("GET", "/dashboard/t.score_x.narrow", app=host_a).status == 200


def test_the_session_never_holds_the_secret(host_a, shared_redis):
    stack_options = host_a.gateway.settings.session
    browser = Browser(host_a)
    browser.log_in("admin")
    record = shared_redis.get(RECORD.format(browser.session_id))
    session = SignedSessionReader(stack_options).read(record)
    assert session["api_key_name"] == "admin"
    assert re.fullmatch(r"[0-9a-f]{32}", session["api_key_fingerprint"])
    assert KEYS["admin"][0] not in json.dumps(session)


class SignedSessionReader:
    """Decrypt a stored record with the gateway's keys, as Beaker does (to inspect what is kept)."""

    def __init__(self, options):
        from beaker.session import Session

        self.session = Session(
            {},
            use_cookies=False,
            type="cookie",
            data_serializer="json",
            encrypt_key=options["session.encrypt_key"],
            validate_key=options["session.validate_key"],
            namespace_class=dict,
        )

    def read(self, record):
        return self.session._decrypt_data(record.decode("ascii"))


# --- several hosts ------------------------------------------------------------------------------


def test_a_login_on_one_host_holds_on_the_other_and_so_does_the_logout(host_a, host_b):
    browser = Browser(host_a)
    browser.log_in("watcher", app=host_a)
    saved = browser.cookie
    assert browser.logged_in_as(app=host_b) == "watcher"
    assert browser.request("GET", "/dashboard/t.score_x.hosts", app=host_b).status == 200
    browser.log_out(app=host_b)
    assert browser.logged_in_as(app=host_a, cookie=saved) is None


# --- session ids are checked before they reach Redis --------------------------------------------


@pytest.mark.parametrize("crafted", ["../../etc/passwd", "beaker_cache:*", "0" * 31, "A" * 32, "0" * 33, ""])
def test_a_store_refuses_ids_beaker_never_makes(crafted):
    with pytest.raises(InvalidSessionId):
        RedisSessionStore(crafted, url="redis://127.0.0.1:1/0")


def test_crafted_ids_signed_with_the_real_secret_never_reach_redis(build_stack):
    with PrivateRedis(persistent=False) as private:
        stack = redis_stack(build_stack, url=private.url)
        for crafted in ("../../x", "beaker_cache:*", "*", "0" * 64):
            cookie = SignedCookie(SESSION_SECRET).value_encode(crafted)[1]
            browser = Browser(stack)
            browser.cookie = cookie
            assert browser.logged_in_as() is None
            assert browser.session_id != crafted
        keys = [key.decode() for key in private.client().keys("*")]
        assert keys and all(re.fullmatch(r"beaker_cache:[0-9a-f]{32}:session", key) for key in keys), keys


# --- Redis stopped and started again ------------------------------------------------------------


@pytest.fixture
def private_redis():
    node = PrivateRedis(persistent=True).start()
    yield node
    node.cleanup()


def test_redis_down_the_dashboard_answers_503_and_the_api_keeps_working(build_stack, private_redis):
    stack = redis_stack(build_stack, url=private_redis.url, retry_after="7")
    browser = Browser(stack)
    browser.log_in("admin")
    assert browser.logged_in_as() == "admin"
    private_redis.stop()

    page = browser.request("GET", "/dashboard/")
    assert page.status == 503 and page.header("Retry-After") == "7"
    assert page.header("Content-Type").startswith("text/html")
    assert "session_store_unavailable" in page.text and "<html" in page.text
    scripted = browser.request("GET", "/dashboard/t.score_x.down", accept="application/json")
    assert scripted.status == 503 and scripted.header("Retry-After") == "7"
    assert json.loads(scripted.body)["error"] == "session_store_unavailable"
    form = browser.request("POST", "/dashboard/", {"action": "logout", "csrf_token": "x"})
    assert form.status == 503
    ticket = browser.request("GET", "/dashboard/t.score_x.down/ticket", accept="application/json")
    assert ticket.status == 503 and json.loads(ticket.body)["error"] == "session_store_unavailable"

    newcomer = Browser(stack).request("GET", "/dashboard/")  # a new session fails when it is saved
    assert newcomer.status == 503 and newcomer.header("Retry-After") == "7"
    assert (
        newcomer.header("Content-Type").startswith("text/html")
        and "session_store_unavailable" in newcomer.text
    )

    api = call(stack, "POST", "/broadcast/t.score_x.down", [("Authorization", bearer("admin"))], b"1")
    assert api.status == 202, api.text
    assert call(stack, "GET", "/health").status == 200
    assert call(stack, "GET", "/openapi.json").status == 200

    private_redis.start()
    assert browser.logged_in_as() == "admin"  # the session survived the restart (append-only file)
    browser.log_out()
    assert browser.logged_in_as() is None


def test_a_frozen_redis_costs_a_bounded_wait_then_503_never_a_hung_page(build_stack, private_redis):
    """Redis frozen with SIGSTOP (it accepts connections, never answers): socket timeouts end the wait."""
    stack = redis_stack(build_stack, url=private_redis.url)
    browser = Browser(stack)
    browser.log_in("admin")
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        page = browser.request("GET", "/dashboard/")
        waited = time.monotonic() - started
        assert page.status == 503 and page.header("Retry-After") == "5"
        assert waited < 20, waited  # 1 s socket timeouts, a few round trips; generous for a loaded machine
        api = call(stack, "POST", "/broadcast/t.score_x.frozen", [("Authorization", bearer("admin"))], b"1")
        assert api.status == 202
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert browser.logged_in_as() == "admin"  # thawed: the same session again


def test_redis_lost_while_saving_the_session_answers_503_not_500(build_stack, tmp_path, private_redis):
    """Redis shut down between loading and saving a session (in the request): a 503, never a 500."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "probe.py").write_text(SHUTDOWN_PROBE)
    stack = redis_stack(build_stack, url=private_redis.url, apps_directory=str(apps))
    browser = Browser(stack)
    first = browser.request("GET", "/probe", accept="text/html")
    assert first.status == 200 and first.body == b"saved"
    cookie = browser.cookie
    html = browser.request("GET", "/probe?shutdown=1", accept="text/html", cookie=cookie)
    assert html.status == 503 and html.header("Retry-After") == "5"
    assert "session_store_unavailable" in html.text and html.header("Content-Type").startswith("text/html")
    assert not private_redis.is_running() or private_redis.process.wait(timeout=10) is not None
    private_redis.start()
    again = browser.request("GET", "/probe?shutdown=1", accept="application/json", cookie=cookie)
    assert again.status == 503 and json.loads(again.body)["error"] == "session_store_unavailable"


SHUTDOWN_PROBE = """
import redis


def application(environ, start_response):
    session = environ["beaker.session"]
    session["visits"] = session.get("visits", 0) + 1
    if "shutdown" in environ.get("QUERY_STRING", ""):
        try:
            session.namespace.client.shutdown(nosave=True)
        except redis.RedisError:
            pass
    session.save()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"saved"]
"""


def test_a_store_that_cannot_connect_raises_503_with_retry_after():
    store = RedisSessionStore("0" * 32, url="redis://127.0.0.1:1/0", retry_after=3)
    with pytest.raises(SessionStoreUnavailable) as raised:
        store["session"]
    assert raised.value.status == 503 and ("Retry-After", "3") in raised.value.headers
