"""HTTP plumbing shared by the app modules: routes, bodies, JSON, errors.

``error_response`` is the one place where a ``HutchError`` becomes an HTTP
response (JSON, or a page for a browser where a route has pages); app
modules only raise.
"""

import html
import json

from webob import Request, Response

from hutch.auth.csrf import SESSION_KEY, authorize_browser
from hutch.auth.policy import IDIOMS, authorize
from hutch.errors import BadRequest, HutchError, MethodNotAllowed, NotFound, PayloadTooLarge
from hutch.names import checked_name

GATEWAY_KEY = "hutch.gateway"
ROUTE_NAMES_KEY = "hutch.route_names"  # the names in the path, for the access log
NAME_KINDS = {"exchange": "exchange", "routing_key": "routing key", "consumer": "consumer"}


ENCODE_JSON = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps makes one per call


def json_response(status, data, headers=()):
    body = ENCODE_JSON(data).encode() + b"\n"
    # A ready headerlist skips WebOb's content-type and charset negotiation.
    headerlist = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
    return Response(body=body, status=status, headerlist=headerlist)


JSON_FIRST = ("application/json", "text/html")  # a client that states no preference gets JSON
HTML_FIRST = ("text/html", "application/json")  # ... or, on the dashboard's pages, a page


def prefers_html(request, offers=JSON_FIRST):
    """Does ``Accept`` rank text/html above JSON?  Ties go to the first of ``offers``."""
    best = request.accept.acceptable_offers(list(offers))
    return bool(best) and best[0][0] == "text/html"


def error_response(error, request=None, page=None, offers=JSON_FIRST):
    """The one place where a ``HutchError`` becomes a response, as webob.exc's errors are responses.

    The contract's JSON error; or, where ``page`` is given and ``request``
    prefers HTML, ``page(request, error)``.  A page never carries
    ``WWW-Authenticate``: a browser logs in with a form, not its Basic dialog.
    """
    if page is not None and request is not None and prefers_html(request, offers):
        response = page(request, error)
        response.headerlist.extend(h for h in error.headers if h[0].lower() != "www-authenticate")
        return response
    response = json_response(error.status, {"error": error.code, "detail": error.detail})
    response.headerlist.extend(error.headers)
    return response


def plain_error_page(request, error):
    """A short page for an error met outside any view (saving the session)."""
    title = html.escape(f"{error.status} {error.code}")
    body = f"<!DOCTYPE html>\n<title>{title}</title>\n<h1>{title}</h1>\n<p>{html.escape(error.detail)}</p>\n"
    return Response(body=body.encode(), status=error.status, content_type="text/html", charset="utf-8")


# What ``read_body`` raises; views that read a body declare these (``operation``).
BODY_ERRORS = (BadRequest, PayloadTooLarge)


def operation(operation_id, raises=()):
    """Name a view's operation in the OpenAPI document (``hutch.contract``) and the errors it raises.

    What the route itself answers (a bad name, 401/403 for its permission,
    405, a session store that is down) the document adds from the ``Route``.
    """

    def mark(view):
        view.operation_id = operation_id
        view.raises = tuple(raises)
        return view

    return mark


def read_body(environ, limit):
    """The request body, refusing more than ``limit`` bytes before reading it."""
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        try:
            size = int(length)
        except ValueError:
            raise BadRequest("Content-Length is not a number.") from None
        if size < 0:
            raise BadRequest("Content-Length is negative.")
        if size > limit:
            raise PayloadTooLarge(f"The body is {size} bytes; the limit is {limit}.")
        body = _read(stream, size)
        if len(body) < size:
            raise BadRequest("The body is shorter than Content-Length.")
        return body
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = _read(stream, limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
        return body
    return b""


def _read(stream, size):
    """mod_wsgi raises OSError when the client stops sending (read timeout) or goes away."""
    try:
        return stream.read(size)
    except OSError:
        raise BadRequest("The request body could not be read to its end.") from None


def as_sent(segment):
    """A PATH_INFO segment (bytes as latin-1, PEP 3333) as the text the client sent, for messages.

    UTF-8 is decoded (``scöre``, not ``scÃ¶re``); a byte that is not UTF-8 becomes U+FFFD.
    """
    if segment.isascii():
        return segment
    return segment.encode("latin-1", "replace").decode("utf-8", "replace")


class Route:
    """A path pattern below the app module's segment and its views by method.

    ``pattern`` is a tuple of segments: literals, or ``{name}`` placeholders
    that must be valid names (the contract's Names).  ``permission`` is what
    an API key must be allowed (``hutch.auth.policy``): an idiom, a tuple of idioms
    (all of them), or ``{method: either}``; None leaves the route open
    (health, openapi).  ``browser``: a key the browser logged in with (its
    session) counts as well as an ``Authorization`` header.  ``page``: the
    route's errors are pages for browsers (``page(request, error)``), and the
    session is loaded first, so a store that is down answers 503 at once.
    Errors met before the route is chosen (404, 405, a bad name) are JSON.
    """

    def __init__(self, pattern, permission=None, *, browser=False, page=None, **views):
        self.segments = tuple(segment for segment in pattern.split("/") if segment)
        self.permissions = {method: _idioms(permission, method) for method in views}
        self.browser = browser
        self.page = page
        self.views = views
        self.declared = pattern

    @property
    def reads_session(self):
        """A browser's key, or a page, comes from the session: a store that is down is its 503."""
        return self.browser or self.page is not None

    def path(self, mount):
        """The route's path below the gateway, as documented: a pattern declared ``/`` keeps its slash."""
        path = "/" + "/".join(part for part in (mount, *self.segments) if part)
        return path + "/" if self.declared == "/" and path != "/" else path

    def authorize(self, request, gateway, names):
        """Raise 401/403 unless the request's key may use this route's idioms on this resource."""
        idioms = self.permissions.get(request.method) or self.permissions.get("GET", ())
        if not idioms:
            return
        resource = "/".join(names[name] for name in ("exchange", "routing_key") if name in names)
        check = authorize_browser if self.browser else authorize
        for idiom in idioms:
            check(request.environ, gateway.settings.auth, idiom, resource)

    def respond(self, request, gateway, view, names):
        """Authorize and run the view; its errors become responses here (JSON, or the route's page)."""
        try:
            if self.page is not None:
                request.environ["beaker.session"].get(SESSION_KEY)  # load it: a store that is down is a 503
            self.authorize(request, gateway, names)
            return view(request, gateway, **names)
        except HutchError as error:
            return error_response(error, request, self.page, HTML_FIRST)

    def match(self, parts):
        if len(parts) != len(self.segments):
            return None
        names = {}
        for expected, actual in zip(self.segments, parts, strict=True):
            if expected.startswith("{"):
                names[expected[1:-1]] = actual
            elif expected != actual:
                return None
        return names


def _idioms(permission, method):
    """The idioms a method of a route needs: ``permission`` as ``Route`` takes it, as a tuple."""
    if isinstance(permission, dict):
        permission = permission.get(method)
    idioms = () if permission is None else (permission,) if isinstance(permission, str) else tuple(permission)
    for idiom in idioms:
        if idiom not in IDIOMS:
            raise ValueError(f"permission {idiom!r} is not one of {IDIOMS}")
    return idioms


class Routes:
    """A WSGI application made of ``Route``s: what each app module exports."""

    def __init__(self, *routes):
        self.routes = routes

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            route, view, names = self.resolve(request)
        except HutchError as error:
            # a bad name on a route with pages (the dashboard's): a browser gets the page, not JSON
            response = error_response(error, request, getattr(error, "page", None), HTML_FIRST)
        else:
            response = route.respond(request, environ[GATEWAY_KEY], view, names)
        return response(environ, start_response)

    def resolve(self, request):
        """``(route, view, names)`` for the request; 404, 405 or 400 (a bad name) if there is none."""
        # PATH_INFO as the server gave it (latin-1 for bytes); WebOb's path_info decodes UTF-8 and
        # raises on /%80.  Names are ASCII, so a non-ASCII segment fails their check: 400, or 404.
        path = request.environ.get("PATH_INFO", "")
        parts = [as_sent(part) for part in path.split("/") if part]
        if path.endswith("/") and parts:
            raise NotFound()
        for route in self.routes:
            names = route.match(parts)
            if names is None:
                continue
            view = route.views.get(request.method)
            if view is None and request.method == "HEAD":
                view = route.views.get("GET")
            if view is None:
                raise MethodNotAllowed(allowed_methods(route))
            try:
                for name, value in names.items():
                    checked_name(value, NAME_KINDS.get(name, name))
            except HutchError as error:
                error.page = route.page  # None: JSON, as for every API route
                raise
            request.environ[ROUTE_NAMES_KEY] = names
            return route, view, names
        raise NotFound()


def allowed_methods(route):
    """What ``Allow`` lists for a route: its methods, and HEAD wherever GET."""
    return {*route.views, "HEAD"} if "GET" in route.views else set(route.views)
