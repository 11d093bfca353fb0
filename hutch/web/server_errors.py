"""Errors Apache answers before the gateway runs, in the contract's JSON shape.

Apache refuses some requests itself: a malformed or oversized head (400,
414), a body over its hard limit (413), a client too slow to send (408),
and TRACE (405; ``TraceEnable Off``).  Its ``ErrorDocument``s serve, for
the first four, the static JSON files in ``apache/errors/`` (a static file,
because the request may be unreadable or its body must not be read); and
for 405 an internal redirect into the gateway, which answers for the
original path so that ``Allow`` lists that route's methods.  ``hutch serve``
and ``apache/hutch.conf`` configure the same documents.
"""

import json

from hutch.errors import BadRequest, MethodNotAllowed, PayloadTooLarge, RequestTimeout, UriTooLong
from hutch.inifile import ROOT
from hutch.settings import Settings
from hutch.web.http import error_response

ERRORS_DIRECTORY = ROOT / "apache" / "errors"
# Below the mount point: the static documents, and the gateway's answer to a refused method.
ERRORS_PATH = "/.errors"
METHOD_NOT_ALLOWED_PATH = "/.method-not-allowed"
EVENTS_PREFIX = "/events/"  # hutch serve and apache/hutch.conf proxy this to the event servers
REFUSED_METHOD = "TRACE"  # the one method Apache refuses on the gateway's paths

BODY_SLACK = 64 * 1024  # Apache's hard limit (LimitRequestBody) sits this far above max_body_bytes
DEFAULT_BODY_LIMIT = Settings.max_body_bytes + BODY_SLACK  # apache/hutch.conf's LimitRequestBody

# status -> the error Apache's document carries, with a detail that says what Apache refused.
STATIC_ERRORS = {
    400: BadRequest(
        "The server could not read the request: a malformed header, a header field over 8190 bytes, "
        "more than 100 header fields, or a bad Content-Length."
    ),
    408: RequestTimeout(),
    413: PayloadTooLarge(
        f"The request body is larger than the server accepts at all: Apache's limit is max_body_bytes + "
        f"{BODY_SLACK} bytes ({DEFAULT_BODY_LIMIT} with the default max_body_bytes, "
        f"{Settings.max_body_bytes}). The gateway's own limit is max_body_bytes (its 413 says the value)."
    ),
    414: UriTooLong(),
}
STATIC_CLASSES = tuple(type(error) for error in STATIC_ERRORS.values())


def error_document(status):
    """The bytes of ``apache/errors/{status}.json``."""
    error = STATIC_ERRORS[status]
    return json.dumps({"error": error.code, "detail": error.detail}, separators=(",", ":")).encode() + b"\n"


def error_documents(mount_point):
    """``[(status, URL path)]``: Apache's ErrorDocument settings for a gateway at ``mount_point``."""
    prefix = mount_point.rstrip("/")
    documents = [(status, f"{prefix}{ERRORS_PATH}/{status}.json") for status in STATIC_ERRORS]
    return sorted([*documents, (405, prefix + METHOD_NOT_ALLOWED_PATH)])


class MethodNotAllowedDocument:
    """Answer Apache's refusal of a method (TRACE) as the gateway answers any method a route lacks.

    Apache redirects the refused request here as a GET, with the original path
    in ``REDIRECT_URL``; clients cannot set ``REDIRECT_*`` (their headers
    arrive as ``HTTP_*``).  The original path is dispatched again as TRACE,
    which no route serves, so no view runs: a route answers 405 with its
    ``Allow``, an unknown path 404.
    """

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != METHOD_NOT_ALLOWED_PATH or environ.get("REDIRECT_STATUS") != "405":
            return self.application(environ, start_response)
        original = environ.get("REDIRECT_URL", "")
        script_name = environ.get("SCRIPT_NAME", "")
        if not (original == script_name or original.startswith(script_name + "/")):
            # outside the gateway (Apache's own files): they answer GET and HEAD
            return error_response(MethodNotAllowed({"GET", "HEAD"}))(environ, start_response)
        path = original[len(script_name) :]
        if path.startswith(EVENTS_PREFIX):
            # proxied to the event servers, which serve GET and HEAD only
            return error_response(MethodNotAllowed({"GET", "HEAD"}))(environ, start_response)
        environ = {
            **environ,
            "REQUEST_METHOD": REFUSED_METHOD,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "CONTENT_LENGTH": "0",
        }
        return self.application(environ, start_response)
