"""The error answers: which statuses an operation may answer besides its own, and how each reads.

``error_responses`` groups the ``HutchError`` classes an operation raises by
status (with the web server's own errors, ``SERVER_ERRORS``), each code's
meaning from ``hutch.contract.prose``, and the headers that come with them
(``Allow``, ``WWW-Authenticate``, ``Retry-After``).
"""

from hutch.contract.prose import CODE_MEANINGS
from hutch.contract.schemas import JSON, ref
from hutch.errors import (
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    IdempotencyInFlight,
    IdempotencyUnavailable,
    InvalidName,
    PayloadTooLarge,
    RequestTimeout,
    ReservedName,
    SessionStoreUnavailable,
    TooManyStreams,
    Unauthorized,
    UriTooLong,
)

# Errors answered with Retry-After.
RETRYING = (
    BrokerUnavailable,
    TooManyStreams,
    IdempotencyInFlight,
    IdempotencyUnavailable,
    SessionStoreUnavailable,
)

RESPONSE_HEADERS = {
    "Allow": {
        "description": "The methods the route accepts, comma-separated (`HEAD` wherever `GET`).",
        "required": True,
        "schema": {"type": "string", "example": "POST"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before retrying (the `retry_after` setting; default 5).",
        "schema": {"type": "integer", "minimum": 1, "example": 5},
    },
    "IdempotentReplayed": {
        "description": "`true`: this is the stored answer to an earlier request with the same "
        "`Idempotency-Key`; nothing was published this time.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWWAuthenticate": {
        "description": "The schemes the gateway accepts.",
        "required": True,
        "schema": {"type": "string", "example": 'Bearer realm="hutch", Basic realm="hutch"'},
    },
}


def _error_response(status, classes, pages):
    codes = [cls.code for cls in classes]
    lines = [f"- `{cls.code}`: {CODE_MEANINGS.get(cls.code, cls.detail)}" for cls in classes]
    schema = {
        "allOf": [
            ref("schemas", "Error"),
            {"type": "object", "properties": {"error": {"type": "string", "enum": codes}}},
        ]
    }
    response = {"description": "\n".join(lines), "content": {JSON: {"schema": schema}}}
    html = [cls for cls in classes if cls in pages]
    if html:
        codes = ", ".join(f"`{cls.code}`" for cls in html)
        response["description"] += (
            f"\n\nAn HTML page instead of JSON ({codes}) unless `Accept` ranks `application/json` above "
            "`text/html`: a browser, or a client that sends `*/*`, gets the page."
        )
        response["content"]["text/html"] = {"schema": {"type": "string"}}
    if status == 405:
        response["headers"] = {"Allow": ref("headers", "Allow")}
    if status == 401 and html:
        header = {**RESPONSE_HEADERS["WWWAuthenticate"], "required": False}
        header["description"] += " Sent with the JSON answer, not with the HTML page."
        response["headers"] = {"WWW-Authenticate": header}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": ref("headers", "WWWAuthenticate")}
    retrying = [cls for cls in classes if issubclass(cls, RETRYING)]
    if retrying:
        header = dict(RESPONSE_HEADERS["RetryAfter"])
        if len(retrying) == len(classes):
            header["required"] = True
        else:
            sent_with = ", ".join(f"`{cls.code}`" for cls in retrying)
            header["description"] += f" Sent with {sent_with} only."
        response["headers"] = {"Retry-After": header}
    return response


# What the web server (Apache) answers on any route before the gateway runs, always as JSON.
SERVER_ERRORS = (BadRequest, RequestTimeout, PayloadTooLarge, UriTooLong)


def error_responses(*classes, pages=()):
    """``{status: response}`` for the ``HutchError`` classes an operation may raise.

    The web server's own errors (``SERVER_ERRORS``) are added to every operation.
    ``pages``: the classes a dashboard route answers browsers with an error page instead.
    """
    by_status = {}
    for cls in (*classes, *SERVER_ERRORS):
        if cls not in by_status.get(cls.status, []):
            by_status.setdefault(cls.status, []).append(cls)
    responses = {
        str(status): _error_response(status, group, pages) for status, group in sorted(by_status.items())
    }
    responses["500"] = ref("responses", "InternalError")
    return responses


NAME_ERRORS = (InvalidName, ReservedName)
AUTH_ERRORS = (Unauthorized, Forbidden)
REPLAYED = {"Idempotent-Replayed": ref("headers", "IdempotentReplayed")}


RESPONSES = {
    "InternalError": {
        "description": "An unexpected failure; the gateway logs it. Outside development mode the body never "
        "carries a traceback: a short HTML page from the error middleware, or the JSON error `internal`.",
        "content": {
            JSON: {"schema": ref("schemas", "Error")},
            "text/html": {"schema": {"type": "string"}},
        },
    },
}
