"""HTTP plumbing shared by the app modules: routes, bodies, JSON, errors.

``error_response`` is the one place where a ``HutchError`` becomes an HTTP
response; app modules only raise.
"""

import json

from webob import Request, Response

from .errors import BadRequest, HutchError, MethodNotAllowed, NotFound, PayloadTooLarge
from .names import checked_name

GATEWAY_KEY = "hutch.gateway"
NAME_KINDS = {"exchange": "exchange", "routing_key": "routing key", "consumer": "consumer"}


def json_response(status, data, headers=()):
    response = Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")).encode() + b"\n",
        content_type="application/json",
        charset=None,
    )
    response.headerlist.extend(headers)
    return response


def error_response(error):
    """The contract's JSON error for any ``HutchError``."""
    response = json_response(error.status, {"error": error.code, "detail": error.detail})
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
        body = stream.read(size)
        if len(body) < size:
            raise BadRequest("The body is shorter than Content-Length.")
        return body
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
        return body
    return b""


class Route:
    """A path pattern below the app module's segment and its views by method.

    ``pattern`` is a tuple of segments: literals, or ``{name}`` placeholders
    that must be valid names (CONTRACT.md, Names).
    """

    def __init__(self, pattern, **views):
        self.segments = tuple(segment for segment in pattern.split("/") if segment)
        self.views = views

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
        parts = [part for part in request.path_info.split("/") if part]
        if request.path_info.endswith("/") and parts:
            raise NotFound()
        for route in self.routes:
            names = route.match(parts)
            if names is None:
                continue
            view = route.views.get(request.method)
            if view is None and request.method == "HEAD":
                view = route.views.get("GET")
            if view is None:
                raise MethodNotAllowed(route.views)
            for name, value in names.items():
                checked_name(value, NAME_KINDS.get(name, name))
            return view(request, request.environ[GATEWAY_KEY], **names)
        raise NotFound()
