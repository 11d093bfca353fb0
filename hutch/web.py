"""HTTP plumbing shared by the app modules: routes, bodies, JSON, errors.

``error_response`` is the one place where a ``HutchError`` becomes an HTTP
response; app modules only raise.
"""

import html
import json

from webob import Request, Response

from .auth import IDIOMS, authorize
from .errors import BadRequest, HutchError, MethodNotAllowed, NotFound, PayloadTooLarge
from .names import checked_name

GATEWAY_KEY = "hutch.gateway"
ROUTE_NAMES_KEY = "hutch.route_names"  # the names in the path, for the access log
NAME_KINDS = {"exchange": "exchange", "routing_key": "routing key", "consumer": "consumer"}


def json_response(status, data, headers=()):
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    # A ready headerlist skips WebOb's content-type and charset negotiation.
    headerlist = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
    return Response(body=body, status=status, headerlist=headerlist)


def error_response(error):
    """The contract's JSON error for any ``HutchError``."""
    response = json_response(error.status, {"error": error.code, "detail": error.detail})
    response.headerlist.extend(error.headers)
    return response


def error_page_or_json(environ, error):
    """A ``HutchError`` met outside any view (saving the session): JSON, or a short page for browsers."""
    request = Request(environ)
    offers = request.accept.acceptable_offers(["application/json", "text/html"])
    if not offers or offers[0][0] != "text/html":
        return error_response(error)
    title = html.escape(f"{error.status} {error.code}")
    body = f"<!DOCTYPE html>\n<title>{title}</title>\n<h1>{title}</h1>\n<p>{html.escape(error.detail)}</p>\n"
    response = Response(body=body.encode(), status=error.status, content_type="text/html", charset="utf-8")
    response.headerlist.extend(error.headers)
    return response


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
    that must be valid names (the contract's Names).  ``permission`` is the
    idiom an API key must be allowed for (``hutch.auth``); None leaves the
    route open (health, openapi).
    """

    def __init__(self, pattern, permission=None, **views):
        if permission is not None and permission not in IDIOMS:
            raise ValueError(f"permission {permission!r} is not one of {IDIOMS}")
        self.segments = tuple(segment for segment in pattern.split("/") if segment)
        self.permission = permission
        self.views = views

    def authorize(self, request, gateway, names):
        """Raise 401/403 unless the request's key may use this idiom on this resource."""
        if self.permission is None:
            return
        resource = "/".join(names[name] for name in ("exchange", "routing_key") if name in names)
        authorize(request.environ, gateway.settings.auth, self.permission, resource)

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


class Routes:
    """A WSGI application made of ``Route``s: what each app module exports."""

    def __init__(self, *routes):
        self.routes = routes

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HutchError as error:
            response = error_response(error)
        return response(environ, start_response)

    def dispatch(self, request):
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
                allowed = {*route.views, "HEAD"} if "GET" in route.views else set(route.views)
                raise MethodNotAllowed(allowed)
            for name, value in names.items():
                checked_name(value, NAME_KINDS.get(name, name))
            request.environ[ROUTE_NAMES_KEY] = names
            gateway = request.environ[GATEWAY_KEY]
            route.authorize(request, gateway, names)
            return view(request, gateway, **names)
        raise NotFound()
