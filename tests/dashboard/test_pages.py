"""The dashboard's pages and session logic through WebTest, on the real stack and RabbitMQ:
following exchanges, CSRF, broadcasting from the page, escaping, keys, static assets."""

import json
import re

import pytest

from harness import amqp
from hutch.auth import tickets

from .conftest import KEYS, PREFIX, browser_client

JSON = {"Accept": "application/json"}


def csrf(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def followed(client):
    page = client.get("/dashboard/")
    return re.findall(r'class="exchange-link" href="[^"]+">([^<]+)</a>', page.text)


# --- the index and following ------------------------------------------------------------------


def log_in(client, secret, return_to=None):
    login = client.get("/dashboard/" + (f"?next={return_to}" if return_to else ""))
    form = login.forms["login"]
    form["api_key"] = secret
    return form.submit("action", value="login", status=(303, 403))


def test_a_browser_logs_in_with_a_key_and_out_again(stack, exchange):
    anonymous = browser_client(stack, key=None)
    page = anonymous.get(f"/dashboard/{exchange}", status=303)
    assert page.location.endswith(f"{PREFIX}/dashboard/?next={exchange}")
    login = page.follow()
    assert login.status_int == 200 and 'type="password"' in login.text
    assert "WWW-Authenticate" not in login.headers  # a form, never the browser's Basic dialog
    refused = log_in(anonymous, "not-a-key-of-this-gateway")
    assert refused.status_int == 403 and "not a valid API key" in refused.text
    answer = log_in(anonymous, KEYS["viewer"][0], return_to=exchange)
    assert answer.location.endswith(f"{PREFIX}/dashboard/{exchange}")
    shown = answer.follow()
    assert '<span class="key-name">viewer</span>' in shown.text
    assert "dashboard-viewer-key" not in anonymous.cookies.get("hutch_session", "")  # only the name
    shown.forms["logout"].submit("action", value="logout", status=303)
    anonymous.get(f"/dashboard/{exchange}", status=303)


def test_a_logged_in_key_is_held_to_its_permissions(stack):
    browser = browser_client(stack, key=None)
    log_in(browser, KEYS["publisher"][0])  # may broadcast, may not watch
    assert browser.get("/dashboard/").status_int == 200
    assert "may not watch" in browser.get("/dashboard/t.scores", status=403).text


def test_following_and_unfollowing_exchanges_lives_in_the_session(client):
    index = client.get("/dashboard/")
    assert index.content_type == "text/html"
    assert "You follow no exchange yet" in index.text
    form = index.forms["follow"]
    form["exchange"] = "scores"
    answer = form.submit("action", value="follow", status=303)
    assert answer.location.endswith(f"{PREFIX}/dashboard/")
    page = client.get("/dashboard/")
    page.forms["follow"]["exchange"] = "fixtures"
    page.forms["follow"].submit("action", value="follow", status=303)
    assert followed(client) == ["scores", "fixtures"]

    client.get("/dashboard/").forms["unfollow-scores"].submit("action", value="unfollow", status=303)
    assert followed(client) == ["fixtures"]
    # the session is the browser's: another browser follows nothing
    assert followed(browser_client(client.app)) == []


def test_a_session_follows_a_bounded_number_of_exchanges(client):
    token = csrf(client.get("/dashboard/"))
    for number in range(20):
        client.post("/dashboard/", {"csrf_token": token, "exchange": f"x{number}", "action": "follow"})
    assert "You follow 16 exchanges, as many as a session holds." in client.get("/dashboard/").text
    assert followed(client) == [f"x{number}" for number in range(16)]


def test_following_from_an_exchange_page_returns_there(client):
    page = client.get("/dashboard/scores")
    answer = page.forms["follow-toggle"].submit("action", value="follow", status=303)
    assert answer.location.endswith(f"{PREFIX}/dashboard/scores")
    assert ">Unfollow</button>" in answer.follow().text


@pytest.mark.parametrize(
    ("name", "status"), [("bad name", 400), ("", 400), ("x" * 128, 400), ("amq.fanout", 403)]
)
def test_following_checks_the_name(client, name, status):
    token = csrf(client.get("/dashboard/"))
    client.post("/dashboard/", {"csrf_token": token, "exchange": name, "action": "follow"}, status=status)
    assert followed(client) == []


# --- CSRF ---------------------------------------------------------------------------------------


def test_a_form_without_the_session_token_is_refused(client):
    client.get("/dashboard/")  # the session exists and has a token
    missing = client.post("/dashboard/", {"exchange": "scores", "action": "follow"}, status=403)
    assert "bad_csrf_token" in missing.text and missing.content_type == "text/html"
    forged = client.post(
        "/dashboard/", {"csrf_token": "A" * 43, "exchange": "scores", "action": "follow"}, status=403
    )
    assert "Reload the page" in forged.text
    scripted = client.post(
        "/dashboard/", {"csrf_token": "", "exchange": "scores", "action": "follow"}, headers=JSON, status=403
    )
    assert scripted.json["error"] == "bad_csrf_token"
    assert followed(client) == []


def test_a_token_of_another_session_is_refused(stack, client):
    other = browser_client(stack)
    token = csrf(other.get("/dashboard/"))
    client.get("/dashboard/")
    client.post("/dashboard/", {"csrf_token": token, "exchange": "scores", "action": "follow"}, status=403)


def test_a_browser_without_a_session_cannot_post(stack):
    fresh = browser_client(stack)
    fresh.post("/dashboard/scores", {"csrf_token": "x" * 43, "body": "{}"}, status=403)


def test_the_masthead_links_to_the_subscriptions_page_under_the_mount_point(client, exchange):
    link = f'<a class="nav" href="{PREFIX}/subscriptions/">Subscriptions</a>'
    for path in ("/dashboard/", f"/dashboard/{exchange}", "/subscriptions/"):
        page = client.get(path)
        assert page.status_int == 200 and link in page.text, path
    assert "Push subscriptions" in client.get("/subscriptions/").text  # the link leads to that page


# --- the exchange page ----------------------------------------------------------------------------


def test_the_page_is_wired_to_the_stream_under_the_mount_point(client, exchange):
    page = client.get(f"/dashboard/{exchange}")
    assert page.content_type == "text/html"
    assert f'data-events-url="{PREFIX}/events/{exchange}"' in page.text
    assert f'data-ticket-url="{PREFIX}/dashboard/{exchange}/ticket"' in page.text
    assert f'src="{PREFIX}/static/dashboard.js"' in page.text
    assert f'src="{PREFIX}/static/rateplot.js"' in page.text
    assert 'id="rate-plot"' in page.text  # the message-rate plot, drawn by rateplot.js
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert 'id="status"' in page.text  # the live/reconnecting indicator


def test_the_page_needs_the_watch_permission(stack, exchange):
    browser_client(stack, key=None).get(f"/dashboard/{exchange}", status=303)  # to the login form
    browser_client(stack, key=None).get(f"/dashboard/{exchange}", headers=JSON, status=401)
    browser_client(stack, key="publisher").get(f"/dashboard/{exchange}", status=403)


# --- broadcasting from the page ---------------------------------------------------------------------


@pytest.fixture
def listener(exchange):
    """A queue bound to the exchange, as any consumer would have: what the page sends lands here."""
    with amqp.channel() as channel:
        channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=True)
        queue = channel.queue_declare("", exclusive=False, auto_delete=False).method.queue
        channel.queue_bind(queue, exchange)
    yield queue
    with amqp.channel() as channel:
        channel.queue_delete(queue)


def received(queue):
    with amqp.channel() as channel:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None, "nothing arrived"
    return properties, body


def test_the_form_broadcasts_then_redirects_back_with_a_flash(client, exchange, listener):
    page = client.get(f"/dashboard/{exchange}")
    form = page.forms["publish"]
    form["content_type"] = "application/json"
    form["body"] = '{"team": "home",\r\n "score": 1}'
    answer = form.submit(status=303)
    assert answer.location.endswith(f"{PREFIX}/dashboard/{exchange}")
    properties, body = received(listener)
    assert body == b'{"team": "home",\n "score": 1}'
    assert (properties.content_type, properties.app_id) == ("application/json", "hutch-dashboard")
    assert properties.message_id and properties.timestamp
    shown = answer.follow()
    assert f"Broadcast {properties.message_id[:8]} sent." in shown.text
    assert "sent." not in client.get(f"/dashboard/{exchange}").text  # a flash shows once


def test_the_pages_script_gets_json(client, exchange, listener):
    token = csrf(client.get(f"/dashboard/{exchange}"))
    form = {"csrf_token": token, "content_type": "text/plain; charset=utf-8", "body": "goal!"}
    answer = client.post(f"/dashboard/{exchange}", form, headers=JSON, status=202)
    assert answer.json["routed"] is True and answer.json["exchange"] == exchange
    properties, body = received(listener)
    assert (body, properties.message_id) == (b"goal!", answer.json["message_id"])


def test_invalid_json_is_shown_again_escaped_and_not_sent(client, exchange, listener):
    form = client.get(f"/dashboard/{exchange}").forms["publish"]
    form["body"] = '</textarea><script>alert("x")</script>'
    answer = form.submit(status=400)
    assert "not valid JSON" in answer.text
    assert "<script>alert" not in answer.text
    assert "&lt;/textarea&gt;&lt;script&gt;alert(" in answer.text
    with amqp.channel() as channel:
        assert channel.queue_declare(listener, passive=True).method.message_count == 0


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [("not a type", 400, "invalid_message"), ("text/plain\r\nX-Evil: 1", 400, "invalid_message")],
)
def test_the_content_type_is_checked(client, exchange, content_type, status, code):
    token = csrf(client.get(f"/dashboard/{exchange}"))
    form = {"csrf_token": token, "content_type": content_type, "body": "x"}
    answer = client.post(f"/dashboard/{exchange}", form, headers=JSON, status=status)
    assert answer.json["error"] == code


def test_a_message_over_max_body_bytes_is_refused(client, exchange):
    token = csrf(client.get(f"/dashboard/{exchange}"))
    form = {"csrf_token": token, "content_type": "text/plain", "body": "é" * 2049}  # 4098 bytes > 4096
    answer = client.post(f"/dashboard/{exchange}", form, headers=JSON, status=413)
    assert answer.json["error"] == "payload_too_large"


def test_broadcasting_from_the_page_needs_the_broadcast_permission(stack, exchange):
    watcher = browser_client(stack, key="watcher")
    name = exchange.replace("t.dash.", "t.")  # the watcher may watch t.*
    token = csrf(watcher.get(f"/dashboard/{name}"))
    answer = watcher.post(f"/dashboard/{name}", {"csrf_token": token, "body": "{}"}, headers=JSON, status=403)
    assert answer.json["error"] == "forbidden"


def test_forms_must_be_url_encoded(client, exchange):
    client.get(f"/dashboard/{exchange}")
    client.post(
        f"/dashboard/{exchange}",
        json.dumps({"body": "{}"}),
        headers={**JSON, "Content-Type": "application/json"},
        status=400,
    )


def test_a_form_with_a_field_it_does_not_have_is_refused_and_does_nothing(client, exchange, listener):
    page = client.get(f"/dashboard/{exchange}")
    token = csrf(page)
    form = {"csrf_token": token, "body": "[1]", "content_type": "application/json"}
    refused = client.post(f"/dashboard/{exchange}", {**form, "debug": "1"}, headers=JSON, status=400)
    assert refused.json["error"] == "bad_request" and "'debug'" in refused.json["detail"]
    follow = {"csrf_token": token, "exchange": "scores", "action": "follow"}
    refused = client.post("/dashboard/", {**follow, "redirect": "x"}, headers=JSON, status=400)
    assert refused.json["error"] == "bad_request"
    assert followed(client) == []
    # the same forms without the extra field do what they say: the first message is this one
    client.post(f"/dashboard/{exchange}", {**form, "body": "{}"}, headers=JSON, status=202)
    assert received(listener)[1] == b"{}"
    client.post("/dashboard/", follow, headers=JSON, status=200)
    assert followed(client) == ["scores"]


# --- static assets and routes ------------------------------------------------------------------------


def test_only_the_whitelisted_assets_are_served_with_an_etag(client):
    script = client.get("/static/dashboard.js")
    assert script.content_type == "text/javascript"
    assert "EventSource" in script.text
    client.get("/static/dashboard.js", headers={"If-None-Match": script.headers["ETag"]}, status=304)
    assert client.get("/static/dashboard.css").content_type == "text/css"
    plot = client.get("/static/rateplot.js")
    assert plot.content_type == "text/javascript" and "hutch:message" in plot.text
    for name in ("dashboard.mako", "base.mako", "exchange.mako", "missing.js", "..%2fsetup.py"):
        client.get(f"/static/{name}", status=(400, 404))
    client.get("/static/", status=404)


def test_routes_answer_404_405_and_400_as_the_api_does(client):
    assert client.get("/dashboard/a/b", status=404).content_type == "application/json"
    client.put("/dashboard/scores", status=405)
    client.get("/dashboard/bad%20name", status=400)
    client.get("/dashboard/amq.direct", status=403)


def test_a_bad_name_in_a_dashboard_path_is_a_page_for_a_browser_and_json_for_an_api_client(client):
    for path, status, code in (
        ("/dashboard/bad%20name", 400, "invalid_name"),
        ("/dashboard/amq.x", 403, None),
    ):
        page = client.get(path, status=status)  # the client sends a browser's Accept
        assert page.content_type == "text/html" and "<html" in page.text.lower()
        assert '{"error"' not in page.text
        answer = client.get(path, headers={"Accept": "application/json"}, status=status)
        assert answer.content_type == "application/json"
        assert answer.json["error"] == (code or "reserved_name")
    ticket = client.get("/dashboard/bad%20name/ticket", headers={"Accept": "application/json"}, status=400)
    assert ticket.json["error"] == "invalid_name"


def test_the_pages_script_follows_without_a_redirect(client, exchange):
    token = csrf(client.get(f"/dashboard/{exchange}"))
    form = {"csrf_token": token, "exchange": exchange, "action": "follow", "back": "page"}
    answer = client.post("/dashboard/", form, headers=JSON, status=200)
    assert answer.json == {"exchange": exchange, "following": True}
    assert followed(client) == [exchange]


def test_the_ticket_stands_for_the_logged_in_key_on_one_exchange(stack, exchange):
    url = f"/dashboard/{exchange}/ticket"
    assert browser_client(stack, key=None).get(url, status=401).json["error"] == "unauthorized"
    assert browser_client(stack, key="publisher").get(url, status=403).json["error"] == "forbidden"
    answer = browser_client(stack).get(url, status=200)
    assert answer.headers["Cache-Control"] == "no-store"
    key = tickets.signing_key(stack.gateway.settings.session["session.secret"])
    assert tickets.verify(key, answer.json["ticket"], exchange) == "viewer"
    assert tickets.verify(key, answer.json["ticket"], exchange + "x") is None
    assert answer.json["expires_in"] == stack.gateway.settings.events_ticket_ttl
