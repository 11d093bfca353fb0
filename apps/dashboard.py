"""The live dashboard: pages, the exchanges a viewer follows, a form that broadcasts.

GET  /dashboard/              the exchanges this browser follows and a form to follow one
                              (with API keys on and nobody logged in: the login form)
POST /dashboard/              action = login (api_key) | logout | follow | unfollow (exchange) -> 303,
                              follow/unfollow -> 200 JSON for the page's script
GET  /dashboard/{exchange}    the live page, fed by EventSource on /events/{exchange}
POST /dashboard/{exchange}    broadcast the form's message -> 303 back to the page, or 202 JSON when
                              the page's script sends it (Accept: application/json)
GET  /dashboard/{exchange}/ticket  a short-lived signed ticket for the page's EventSource (JSON)

Only these routes use the Beaker session: followed exchanges, a one-time
flash message, the CSRF token every form carries, and the API key the browser logged in with.  A page needs
``watch`` on its exchange; broadcasting from it needs ``broadcast`` too.
When the session store (Redis) is down, every page answers 503 with
``Retry-After``: a page for browsers, JSON for scripts.
"""

from hutch.auth.csrf import FIELD, check_csrf, log_in, log_out, viewer
from hutch.auth.policy import ENVIRON_KEY
from hutch.auth.tickets import issue, signing_key
from hutch.errors import (
    PUBLISH_FAILURES,
    BadCsrfToken,
    BadRequest,
    Forbidden,
    InvalidMessage,
    InvalidName,
    PayloadTooLarge,
    ReservedName,
    Unauthorized,
)
from hutch.messages import message_from_form
from hutch.names import checked_name
from hutch.web.http import HTML_FIRST, Route, Routes, json_response, operation, prefers_html
from hutch.web.pages import (
    MAX_FOLLOWED,
    Links,
    error_page,
    followed,
    next_exchange,
    pop_flash,
    read_form,
    redirect,
    render,
    session_of,
    set_flash,
)

# The fields each form has (templates/*.mako); any other is refused, as the OpenAPI document says.
ACT_FIELDS = frozenset({FIELD, "action", "api_key", "next", "exchange", "back"})
PUBLISH_FIELDS = frozenset({FIELD, "content_type", "body"})
DEFAULT_CONTENT_TYPE = "application/json"
CONTENT_TYPES = ("application/json", "text/plain; charset=utf-8", "text/csv", "application/xml")


def wants_json(request):
    """The page's own script (it asks for JSON); a browser gets pages and redirects."""
    return not prefers_html(request, HTML_FIRST)


def require_login(request, gateway):
    """With API keys on, the index needs a key (header or session), whatever its permissions."""
    policy = gateway.settings.auth
    if policy.enabled and viewer(request.environ, policy) is None:
        raise Unauthorized("Log in with an API key.")


# --- the index: log in, follow ---------------------------------------------------


@operation("dashboardIndex")
def index(request, gateway):
    session = session_of(request)
    policy = gateway.settings.auth
    if policy.enabled and viewer(request.environ, policy) is None:
        target = next_exchange(request.GET.get("next"))
        return render(request, "login.mako", return_to=target, flash=pop_flash(session), error=None)
    return render(
        request,
        "index.mako",
        followed=followed(session),
        flash=pop_flash(session),
        max_followed=MAX_FOLLOWED,
    )


@operation(
    "dashboardAct",
    raises=(InvalidName, ReservedName, BadRequest, Unauthorized, Forbidden, BadCsrfToken, PayloadTooLarge),
)
def act(request, gateway):
    form = read_form(request, ACT_FIELDS, gateway.settings.max_body_bytes)
    session = session_of(request)
    check_csrf(session, form.get(FIELD))
    action = form.get("action")
    links = Links(request)
    if action == "login":
        target = next_exchange(form.get("next"))
        if log_in(session, gateway.settings.auth, form.get("api_key", "").strip()) is None:
            error = Forbidden("That is not a valid API key.")
            values = {"return_to": target, "flash": None, "error": error}
            return render(request, "login.mako", status=403, **values)
        return redirect(links.page(target) if target else links.dashboard)
    if action == "logout":
        log_out(session)
        return redirect(links.dashboard)
    require_login(request, gateway)
    exchange = checked_name(form.get("exchange", "").strip(), "exchange")
    names = followed(session)
    if action == "follow" and exchange not in names:
        if len(names) < MAX_FOLLOWED:
            names.append(exchange)
        else:
            set_flash(session, f"You follow {MAX_FOLLOWED} exchanges, as many as a session holds.")
    elif action == "unfollow":
        names = [name for name in names if name != exchange]
    elif action != "follow":
        raise BadRequest("action must be login, logout, follow or unfollow.")
    session["followed"] = names
    session.save()
    if wants_json(request):  # the page's script: no reload, the messages on screen stay
        return json_response(200, {"exchange": exchange, "following": exchange in names})
    return redirect(links.page(exchange) if form.get("back") == "page" else links.dashboard)


# --- an exchange's page ------------------------------------------------------------


def page_values(session, exchange, **overrides):
    values = {
        "exchange": exchange,
        "following": exchange in followed(session),
        "flash": pop_flash(session),
        "content_types": CONTENT_TYPES,
        "content_type": DEFAULT_CONTENT_TYPE,
        "body": "",
        "error": None,
    }
    values.update(overrides)
    return values


@operation("dashboard")
def page(request, gateway, exchange):
    return render(request, "exchange.mako", **page_values(session_of(request), exchange))


@operation(
    "dashboardBroadcast",
    raises=(BadRequest, InvalidMessage, BadCsrfToken, PayloadTooLarge, *PUBLISH_FAILURES),
)
def publish(request, gateway, exchange):
    settings = gateway.settings
    form = read_form(request, PUBLISH_FIELDS, settings.max_body_bytes)
    session = session_of(request)
    check_csrf(session, form.get(FIELD))
    content_type = form.get("content_type", "").strip() or DEFAULT_CONTENT_TYPE
    text = form.get("body", "").replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    try:
        message = message_from_form(content_type, text, settings.max_body_bytes)
    except BadRequest as error:
        if wants_json(request):
            raise
        values = page_values(session, exchange, content_type=content_type, body=text, error=error)
        return render(request, "exchange.mako", status=error.status, **values)
    routed = gateway.broker.broadcast(exchange, message)
    if wants_json(request):
        return json_response(202, {"message_id": message.message_id, "exchange": exchange, "routed": routed})
    heard = "" if routed else " No queue was bound, so nobody received it."
    set_flash(session, f"Broadcast {message.message_id[:8]} sent.{heard}")
    return redirect(Links(request).page(exchange))


@operation("dashboardTicket")
def ticket(request, gateway, exchange):
    """The event server cannot read this session: the page shows it this signed ticket instead.

    It names the logged-in key and the exchange and expires after
    ``events_ticket_ttl`` seconds; the page fetches one before each
    (re)connection.  401/403 exactly as for the page, always as JSON.
    """
    settings = gateway.settings
    key_name = request.environ.get(ENVIRON_KEY) or ""  # the key the route authorized (none with auth off)
    key = signing_key(settings.session["session.secret"])
    body = {
        "ticket": issue(key, key_name, exchange, settings.events_ticket_ttl),
        "expires_in": settings.events_ticket_ttl,
    }
    return json_response(200, body, headers=[("Cache-Control", "no-store")])


application = Routes(
    Route("/", page=error_page, GET=index, POST=act),
    Route(
        "{exchange}",
        {"GET": "watch", "POST": ("watch", "broadcast")},
        browser=True,
        page=error_page,
        GET=page,
        POST=publish,
    ),
    Route("{exchange}/ticket", "watch", browser=True, GET=ticket),
)
