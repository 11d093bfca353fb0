"""The dashboard's HTML side: templates, links, the session's lists, forms and error pages.

App modules keep their views and route tables; everything a page needs
that is not the view's own decision lives here.
"""

import functools
import hashlib
import logging
import os
import urllib.parse

from mako.lookup import TemplateLookup
from webob import Response

from hutch.auth.csrf import FIELD, csrf_token, viewer
from hutch.errors import BadRequest, SessionStoreUnavailable, Unauthorized
from hutch.names import NAME
from hutch.web.http import GATEWAY_KEY, ROUTE_NAMES_KEY, read_body

log = logging.getLogger(__name__)

MAX_FOLLOWED = 16  # a cookie session holds 4 KB: 16 names of up to 127 characters fit
MAX_FORM_FIELDS = 10

ASSETS = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "rateplot.js": "text/javascript",
}


def read_asset(path, content_type, what):
    """``(bytes, content type, etag)`` of a file served from memory; None, logged, when it is missing."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        log.error("%s %s is missing: %s", what, path, error)
        return None
    return data, content_type, hashlib.sha256(data).hexdigest()[:20]


def asset_response(found):
    """A file ``read_asset`` read, with its ETag: a reload costs a 304, an upgrade shows at once."""
    data, content_type, etag = found
    response = Response(body=data, content_type=content_type, charset="utf-8", conditional_response=True)
    response.etag = etag
    response.cache_control = "no-cache"  # revalidate every time
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@functools.lru_cache(maxsize=4)
def load_assets(templates_directory):
    """name -> (bytes, content type, etag) for every whitelisted asset found."""
    found = {
        name: read_asset(os.path.join(templates_directory, "static", name), content_type, "dashboard asset")
        for name, content_type in ASSETS.items()
    }
    return {name: asset for name, asset in found.items() if asset is not None}


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
        self.subscriptions = f"{self.root}/subscriptions/"

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


def session_of(request):
    return request.environ["beaker.session"]


def render(request, template, status=200, with_session=True, **values):
    """A page; ``with_session=False`` renders it without reading the session (the store is down)."""
    settings = request.environ[GATEWAY_KEY].settings
    lookup = templates(settings.templates_directory)
    text = lookup.get_template(template).render(
        links=Links(request),
        viewer=viewer(request.environ, settings.auth) if with_session else None,
        csrf_field=FIELD,
        csrf_token=csrf_token(session_of(request)) if with_session else "",
        **values,
    )
    response = Response(status=status, text=text, content_type="text/html", charset="utf-8")
    response.headerlist.extend(SECURITY_HEADERS)
    return response


def redirect(location):
    return Response(status=303, location=location)


def error_page(request, error):
    """A dashboard route's error for a browser (``hutch.web.http.error_response`` chooses it by Accept).

    A browser that is not logged in is sent to the login form instead of a 401.
    """
    if isinstance(error, SessionStoreUnavailable):
        return render(request, "error.mako", error.status, with_session=False, error=error)
    if isinstance(error, Unauthorized) and request.method in ("GET", "HEAD"):
        names = request.environ.get(ROUTE_NAMES_KEY, {})
        return redirect(Links(request).login(names.get("exchange")))
    return render(request, "error.mako", status=error.status, error=error)


def read_form(request, fields, max_body_bytes):
    """The url-encoded form, bounded: the body may be the message (max_body_bytes, percent-encoded).

    A field not in ``fields`` is a 400: the forms are the dashboard's own.
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("Dashboard forms are sent as application/x-www-form-urlencoded.")
    raw = read_body(request.environ, form_limit(max_body_bytes))
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
    unknown = sorted({name for name, _ in pairs} - fields)
    if unknown:
        raise BadRequest(f"The form has fields it should not: {', '.join(map(repr, unknown))[:200]}.")
    return dict(pairs)


def form_limit(max_body_bytes):
    """A form's byte limit: its message percent-encoded (three bytes a byte) and the other fields."""
    return 3 * max_body_bytes + 4096


# --- what the session keeps -------------------------------------------------------


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
