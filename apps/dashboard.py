"""The live dashboard: pages, the exchanges a viewer follows, a form that broadcasts.

GET  /dashboard/              the exchanges this browser follows and a form to follow one
                              (with API keys on and nobody logged in: the login form)
POST /dashboard/              action = login (api_key) | logout | follow | unfollow (exchange) -> 303,
                              follow/unfollow -> 200 JSON for the page's script
GET  /dashboard/{exchange}    the live page, fed by EventSource on /events/{exchange}
POST /dashboard/{exchange}    broadcast the form's message -> 303 back to the page, or 202 JSON when
                              the page's script sends it (Accept: application/json)
GET  /dashboard/{exchange}/ticket  a short-lived signed ticket for the page's EventSource (JSON)

Only these routes use the Beaker
session: followed exchanges, a one-time flash message, the CSRF token every
form carries, and the name of the API key the browser logged in with.  A
page needs ``watch`` on its exchange; broadcasting from it needs
``broadcast`` too.
"""

import functools
import json
import re
import time
import urllib.parse
import uuid

import pika
from mako.lookup import TemplateLookup
from webob import Response

from hutch.csrf import FIELD, authorize_browser, check_csrf, csrf_token, log_in, log_out, viewer
from hutch.errors import BadRequest, Forbidden, HutchError, InvalidMessage, PayloadTooLarge, Unauthorized
from hutch.events.sse import parse_content_type
from hutch.messages import Message
from hutch.names import NAME, checked_name
from hutch.tickets import issue, signing_key
from hutch.web import Route, Routes, error_response, json_response, read_body

MAX_FOLLOWED = 16  # the session lives in a cookie (4 KB): 16 names of up to 127 characters fit
MAX_FORM_FIELDS = 10
MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;\s*[\x20-\x7e]*)?")
DEFAULT_CONTENT_TYPE = "application/json"
CONTENT_TYPES = ("application/json", "text/plain; charset=utf-8", "text/csv", "application/xml")
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]


@functools.lru_cache(maxsize=8)
def templates(directory):
    """One lookup per templates folder, built on first use and kept (compiled templates in memory)."""
    return TemplateLookup(
        directories=[directory],
        default_filters=["h"],
        strict_undefined=True,
        input_encoding="utf-8",
    )


class Links:
    """Every path the pages hand out, under the gateway's mount point."""

    def __init__(self, request):
        self.root = request.script_name.rsplit("/", 1)[0]  # SCRIPT_NAME ends with /dashboard
        self.dashboard = f"{self.root}/dashboard/"

    def page(self, exchange):
        return f"{self.root}/dashboard/{exchange}"

    def events(self, exchange):
        return f"{self.root}/events/{exchange}"

    def ticket(self, exchange):
        return f"{self.root}/dashboard/{exchange}/ticket"

    def static(self, name):
        return f"{self.root}/static/{name}"

    def login(self, exchange=None):
        return self.dashboard + (f"?next={exchange}" if exchange else "")


# --- plumbing ---------------------------------------------------------------


def wants_json(request):
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


def session_of(request):
    return request.environ["beaker.session"]


def render(request, gateway, template, status=200, **values):
    session = session_of(request)
    lookup = templates(gateway.settings.templates_directory)
    text = lookup.get_template(template).render(
        links=Links(request),
        viewer=viewer(request.environ, gateway.settings.auth),
        csrf_field=FIELD,
        csrf_token=csrf_token(session),
        **values,
    )
    response = Response(status=status, text=text, content_type="text/html", charset="utf-8")
    response.headerlist.extend(SECURITY_HEADERS)
    return response


def html_errors(view):
    """Errors of the dashboard's views as a page for browsers, JSON for scripts.

    A browser that is not logged in is sent to the login form instead of a 401.
    """

    @functools.wraps(view)
    def page_or_json(request, gateway, **names):
        try:
            return view(request, gateway, **names)
        except HutchError as error:
            if wants_json(request):
                return error_response(error)
            if isinstance(error, Unauthorized) and request.method in ("GET", "HEAD"):
                return redirect(Links(request).login(names.get("exchange")))
            response = render(request, gateway, "error.mako", status=error.status, error=error)
            # no WWW-Authenticate: a browser logs in with the form, never with its Basic dialog
            response.headerlist.extend(h for h in error.headers if h[0].lower() != "www-authenticate")
            return response

    return page_or_json


def redirect(location):
    return Response(status=303, location=location)


def read_form(request, gateway):
    """The url-encoded form, bounded: the body may be the message (max_body_bytes, percent-encoded)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("Dashboard forms are sent as application/x-www-form-urlencoded.")
    raw = read_body(request.environ, 3 * gateway.settings.max_body_bytes + 4096)
    try:
        pairs = urllib.parse.parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeError, ValueError):
        raise BadRequest("The form is not valid url-encoded UTF-8.") from None
    return dict(pairs)


def require_login(request, gateway):
    """With API keys on, the index needs a key (header or session), whatever its permissions."""
    policy = gateway.settings.auth
    if policy.enabled and viewer(request.environ, policy) is None:
        raise Unauthorized("Log in with an API key.")


def followed(session):
    names = session.get("followed")
    if not isinstance(names, list):
        return []
    return [name for name in names if isinstance(name, str) and NAME.fullmatch(name)]


def pop_flash(session):
    flash = session.pop("flash", None)
    if flash is not None:
        session.save()
    return flash if isinstance(flash, str) else None


def set_flash(session, text):
    session["flash"] = text
    session.save()


def next_exchange(value):
    """Where a login returns to: an exchange name, or None for anything else."""
    if isinstance(value, str) and NAME.fullmatch(value) and not value.startswith("amq."):
        return value
    return None


# --- the index: log in, follow ---------------------------------------------------


@html_errors
def index(request, gateway):
    session = session_of(request)
    policy = gateway.settings.auth
    if policy.enabled and viewer(request.environ, policy) is None:
        target = next_exchange(request.GET.get("next"))
        return render(request, gateway, "login.mako", return_to=target, flash=pop_flash(session), error=None)
    return render(
        request,
        gateway,
        "index.mako",
        followed=followed(session),
        flash=pop_flash(session),
        max_followed=MAX_FOLLOWED,
    )


@html_errors
def act(request, gateway):
    form = read_form(request, gateway)
    session = session_of(request)
    check_csrf(session, form.get(FIELD))
    action = form.get("action")
    links = Links(request)
    if action == "login":
        target = next_exchange(form.get("next"))
        if log_in(session, gateway.settings.auth, form.get("api_key", "").strip()) is None:
            error = Forbidden("That is not a valid API key.")
            values = {"return_to": target, "flash": None, "error": error}
            return render(request, gateway, "login.mako", status=403, **values)
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


@html_errors
def page(request, gateway, exchange):
    authorize_browser(request.environ, gateway.settings.auth, "watch", exchange)
    return render(request, gateway, "exchange.mako", **page_values(session_of(request), exchange))


@html_errors
def publish(request, gateway, exchange):
    settings = gateway.settings
    authorize_browser(request.environ, settings.auth, "watch", exchange)
    authorize_browser(request.environ, settings.auth, "broadcast", exchange)
    form = read_form(request, gateway)
    session = session_of(request)
    check_csrf(session, form.get(FIELD))
    content_type = form.get("content_type", "").strip() or DEFAULT_CONTENT_TYPE
    text = form.get("body", "").replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    try:
        body = checked_message(content_type, text, settings.max_body_bytes)
    except BadRequest as error:
        if wants_json(request):
            raise
        values = page_values(session, exchange, content_type=content_type, body=text, error=error)
        return render(request, gateway, "exchange.mako", status=error.status, **values)
    properties = pika.BasicProperties(
        content_type=content_type,
        message_id=uuid.uuid4().hex,
        timestamp=int(time.time()),
        app_id="hutch-dashboard",
    )
    routed = gateway.broker.broadcast(exchange, Message(body, properties))
    if wants_json(request):
        answer = {"message_id": properties.message_id, "exchange": exchange, "routed": routed}
        return json_response(202, answer)
    heard = "" if routed else " No queue was bound, so nobody received it."
    set_flash(session, f"Broadcast {properties.message_id[:8]} sent.{heard}")
    return redirect(Links(request).page(exchange))


def checked_message(content_type, text, limit):
    """The body to publish; raise 400 ``invalid_message`` for a bad content type or invalid JSON."""
    if not MEDIA_TYPE.fullmatch(content_type) or len(content_type) > 255:
        raise InvalidMessage("The content type must look like type/subtype, e.g. application/json.")
    body = text.encode("utf-8")
    if len(body) > limit:
        raise PayloadTooLarge(f"The message is {len(body)} bytes; the limit is {limit}.")
    media_type, _ = parse_content_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            json.loads(text)
        except ValueError as exc:
            raise InvalidMessage(f"The message is not valid JSON: {exc}.") from None
    return body


def ticket(request, gateway, exchange):
    """The event server cannot read this session: the page shows it this signed ticket instead.

    It names the logged-in key and the exchange and expires after
    ``events_ticket_ttl`` seconds; the page fetches one before each
    (re)connection.  401/403 exactly as for the page.
    """
    settings = gateway.settings
    key_name = authorize_browser(request.environ, settings.auth, "watch", exchange) or ""
    key = signing_key(settings.session["session.secret"])
    body = {
        "ticket": issue(key, key_name, exchange, settings.events_ticket_ttl),
        "expires_in": settings.events_ticket_ttl,
    }
    return json_response(200, body, headers=[("Cache-Control", "no-store")])


application = Routes(
    Route("", GET=index, POST=act),
    Route("{exchange}", GET=page, POST=publish),
    Route("{exchange}/ticket", GET=ticket),
)
