"""The OpenAPI 3.0.3 description of the HTTP contract (the gateway's public interface).

The paths come from the route table (``apps/``, as ``hutch.web.dispatch`` loads
it): each ``Route`` gives its path, methods and permission, each view's
``hutch.web.http.operation`` its id and the errors it raises, and the route adds
what it answers itself (a bad name, 401/403, 405, the session store).
Error responses are built from the error classes, limits from the modules
that enforce them, and the prose is data (``hutch.contract.openapi_text``).  The
document is built once per apps folder; ``document(server_url)`` only adds
the ``servers`` entry.  Callers must treat the returned dict as read-only.
"""

import functools
import re
import string
import types

from hutch import errors as hutch_errors
from hutch.contract import openapi_text as text
from hutch.contract.reference import ASSETS as REFERENCE_ASSETS
from hutch.errors import (
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    HutchError,
    IdempotencyInFlight,
    IdempotencyUnavailable,
    InvalidName,
    MethodNotAllowed,
    NoResponder,
    PayloadTooLarge,
    PreconditionFailed,
    RequestTimeout,
    ReservedName,
    RpcTimeout,
    SessionStoreUnavailable,
    TargetRefused,
    TooManyStreams,
    Unauthorized,
    UriTooLong,
)
from hutch.events.resume import MAX_ID_LENGTH
from hutch.events.sse import PREVIEW_BYTES
from hutch.inifile import ROOT
from hutch.messages import (
    DEFAULT_CONTENT_TYPE,
    HTTP_CODINGS,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MEDIA_TYPE,
    SHORTSTR_MAX,
)
from hutch.names import NAME, NAME_MAX
from hutch.settings import SESSION_DEFAULTS, Settings
from hutch.web.dispatch import load_app_modules, route_table
from hutch.web.pages import ASSETS, MAX_FOLLOWED

OPENAPI_VERSION = "3.0.3"
CONTRACT_VERSION = "1"
NAME_PATTERN = f"^{NAME.pattern.replace(chr(92), '')}$"  # ECMA-262 needs no escape for a final -
PRINTABLE_ASCII = "^[\\x20-\\x7e]*$"  # what hutch.messages accepts in a mapped header
JSON = "application/json"
APPS_DIRECTORY = ROOT / "apps"  # the gateway's default


# Errors answered with Retry-After.
RETRYING = (
    BrokerUnavailable,
    TooManyStreams,
    IdempotencyInFlight,
    IdempotencyUnavailable,
    SessionStoreUnavailable,
)


def error_classes():
    """Every error class a client can see that defines a code: ``hutch.errors`` first, root first.

    Abstract groupings such as ``BrokerError`` inherit their parent's code and are left out.
    """
    defined = [
        value
        for value in vars(hutch_errors).values()
        if isinstance(value, type)
        and issubclass(value, HutchError)
        and value.__module__ == hutch_errors.__name__
        and "code" in vars(value)
    ]
    return defined


def _ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


# --- the error codes ---------------------------------------------------------

# The facts the prose (``hutch.contract.openapi_text``) names as ``$name``.
FACTS = {
    "name_max": NAME_MAX,
    "max_headers": MAX_HEADERS,
    "max_header_value": MAX_HEADER_VALUE,
    "max_followed": MAX_FOLLOWED,
    "session_cookie": SESSION_DEFAULTS["session.key"],
    "assets": ", ".join(f"`{name}`" for name in ASSETS),
    "browser_only": text.BROWSER_ONLY,
}
FACTS["amqp_headers"] = string.Template(text.AMQP_HEADERS_PROSE).substitute(FACTS)


def prose(template):
    return string.Template(template).substitute(FACTS)


CODE_MEANINGS = {code: prose(meaning) for code, meaning in text.CODE_MEANINGS.items()}


def _code_table():
    rows = [
        f"| {cls.status} | `{cls.code}` | {CODE_MEANINGS.get(cls.code, cls.detail)} |"
        for cls in sorted(error_classes(), key=lambda cls: cls.status)
    ]
    return "\n".join(["| status | error | when |", "|---|---|---|", *rows])


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every API error: a stable machine-readable code and a human-readable detail.\n\n"
    + _code_table(),
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "enum": [cls.code for cls in error_classes()]},
        "detail": {"type": "string", "description": "Free text for people; never a traceback."},
    },
}

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
            _ref("schemas", "Error"),
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
        response["headers"] = {"Allow": _ref("headers", "Allow")}
    if status == 401 and html:
        header = {**RESPONSE_HEADERS["WWWAuthenticate"], "required": False}
        header["description"] += " Sent with the JSON answer, not with the HTML page."
        response["headers"] = {"WWW-Authenticate": header}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": _ref("headers", "WWWAuthenticate")}
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
    responses["500"] = _ref("responses", "InternalError")
    return responses


NAME_ERRORS = (InvalidName, ReservedName)
AUTH_ERRORS = (Unauthorized, Forbidden)
REPLAYED = {"Idempotent-Replayed": _ref("headers", "IdempotentReplayed")}


# --- parameters ----------------------------------------------------------------


def _name_parameter(name, what):
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}: 1-{NAME_MAX} characters of `A-Z a-z 0-9 _ . : -` "
        "(else 400 `invalid_name`). "
        "Names starting with `amq.` are reserved by RabbitMQ (403 `reserved_name`).",
        "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": NAME_MAX},
    }


def _header(name, description, schema=None):
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": SHORTSTR_MAX, "pattern": PRINTABLE_ASCII},
    }


PARAMETERS = {
    "exchange": _name_parameter("exchange", "exchange name"),
    "routing_key": _name_parameter("routing_key", "routing key (a responder's queue is bound with it)"),
    "consumer": _name_parameter("consumer", "consumer system's name; its queue is `{exchange}.{consumer}`"),
    "ContentEncoding": _header(
        "Content-Encoding",
        f"Becomes the message's `content_encoding` (printable ASCII, at most {SHORTSTR_MAX} characters). "
        "The gateway does not decode the body.",
    ),
    "IdempotencyKey": _header(
        "Idempotency-Key",
        f"Becomes the message's `message_id` (printable ASCII, at most {SHORTSTR_MAX} characters); "
        "without it the gateway makes a new UUID. With the `idempotency_url` setting, broadcast and "
        "notify publish once per key (scoped to the API key name and exchange) within `idempotency_ttl`:"
        " a repeat gets the first 2xx answer again with `Idempotent-Replayed: true`, a concurrent repeat"
        " waits for it (409 `idempotency_in_flight` if the first is still publishing after "
        "`publish_timeout`), a failed attempt is not remembered. Without that setting the gateway does "
        "not deduplicate: consumers may, by `message_id`.",
    ),
    "CorrelationId": _header(
        "X-Correlation-Id",
        f"Becomes the message's `correlation_id` (printable ASCII, at most {SHORTSTR_MAX} characters). "
        "RPC calls always carry the gateway's own correlation id instead.",
    ),
    "XTimeout": _header(
        "X-Timeout",
        "Seconds to wait for the reply: a decimal number > 0 (else 400 `invalid_header`), capped at the "
        "`rpc_max_timeout` setting (default 30); without it, the `rpc_timeout` setting (default 5). "
        "The request message expires with the timeout so a stale call is not served later.",
        {"type": "number", "exclusiveMinimum": True, "minimum": 0, "example": 2.5},
    ),
    "LastEventId": _header(
        "Last-Event-ID",
        "The `id` of the last event the client saw (EventSource sends it when it reconnects): the stream "
        "starts with exactly the messages after it (from the exchange's history stream, on any process), "
        "after a `gap` event when retention dropped some of them.",
    ),
    "ticket": {
        "name": "ticket",
        "in": "query",
        "required": False,
        "description": "A short-lived signed ticket from `GET /dashboard/{exchange}/ticket`, standing for "
        "the logged-in browser's API key (EventSource cannot send `Authorization`); the key must still "
        "have `watch` on the exchange. Expired, forged or for another exchange: 401.",
        "schema": {"type": "string", "maxLength": 1024},
    },
    "last_event_id": {
        "name": "last_event_id",
        "in": "query",
        "required": False,
        "description": "The same as `Last-Event-ID`, for a page that opens a new EventSource itself; "
        "the header wins when both are sent.",
        "schema": {"type": "string", "maxLength": MAX_ID_LENGTH},
    },
}

MESSAGE_PARAMETERS = [
    _ref("parameters", name) for name in ("ContentEncoding", "IdempotencyKey", "CorrelationId")
]

# A header family, which OpenAPI 3.0 cannot declare as parameters: prose in the operations that
# take it, and this vendor extension for tools.
AMQP_HEADER_FAMILY = {
    "prefix": "X-Amqp-Header-",
    "name": "the rest of the header name, lower-cased: a token of `A-Z a-z 0-9 -`",
    "maxHeaders": MAX_HEADERS,
    "schema": {"type": "string", "maxLength": MAX_HEADER_VALUE, "pattern": PRINTABLE_ASCII},
}
# A message body's media types, as concrete types that client generators accept (a ``*/*`` body is
# skipped by some, e.g. openapi-python-client): bytes of any type as ``application/octet-stream``
# (first: a generator that picks one picks it), and text.  The gateway takes any ``Content-Type``.
# No ``application/json``: the gateway takes any JSON value, and a schema that says so (arrays
# included) makes openapi-python-client 0.29 emit code that fails on every call, while an object-only
# schema would narrow what the gateway takes.  Batch routes and the like reuse this constant.
BINARY_SCHEMA = {"type": "string", "format": "binary"}
MESSAGE_BODY_CONTENT = {
    "application/octet-stream": {"schema": BINARY_SCHEMA},
    "text/plain": {"schema": {"type": "string"}},
}
MESSAGE_BODY = {
    "description": "The message body, bytes as sent, of any media type: the types listed are the "
    "two shapes a body takes (bytes, text); send JSON or any other type with its own `Content-Type` "
    "(a client that can only send `application/octet-stream` publishes it with that type). "
    "`Content-Type` becomes the "
    f"message's `content_type` (default `{DEFAULT_CONTENT_TYPE}`; printable ASCII, at most {SHORTSTR_MAX} "
    f"characters). At most `max_body_bytes` (default {Settings.max_body_bytes} bytes), else 413 "
    "`payload_too_large`. Send `Content-Length` or chunked transfer encoding; without either the body "
    "is empty. The client cannot set user_id, reply_to, delivery_mode or any other AMQP property.",
    "required": False,
    "content": MESSAGE_BODY_CONTENT,
}


# --- schemas ---------------------------------------------------------------------

FORM_FIELDS_PROSE = "The form's fields; any other field is refused (400 `bad_request`)."

SCHEMAS = {
    "Error": ERROR_SCHEMA,
    "BroadcastAccepted": {
        "type": "object",
        "required": ["message_id", "exchange", "routed"],
        "properties": {
            "message_id": {
                "type": "string",
                "description": "`Idempotency-Key`, or the UUID the gateway made.",
            },
            "exchange": {"type": "string"},
            "routed": {
                "type": "boolean",
                "description": "At least one queue got the message; always true for an exchange that keeps "
                "history (`events_history`), whose stream queue is bound to it.",
            },
        },
        "example": {
            "message_id": "0b6e3c6f4c0a4f4c9f1d7d1e5a2b3c4d",
            "exchange": "score_updates",
            "routed": True,
        },
    },
    "NotifyAccepted": {
        "type": "object",
        "required": ["message_id", "exchange"],
        "properties": {
            "message_id": {
                "type": "string",
                "description": "`Idempotency-Key`, or the UUID the gateway made.",
            },
            "exchange": {"type": "string"},
        },
        "example": {"message_id": "5d41402abc4b2a76b9719d911017c592", "exchange": "notify.patient.add"},
    },
    "ConsumerQueue": {
        "type": "object",
        "required": ["exchange", "queue", "created", "queue_type"],
        "properties": {
            "exchange": {"type": "string"},
            "queue": {"type": "string", "description": "`{exchange}.{consumer}`"},
            "created": {"type": "boolean", "description": "True when this request declared the queue."},
            "queue_type": {
                "type": "string",
                "description": "The queue's RabbitMQ type: the gateway's `notify_queue_type` for a queue it "
                "declared; an existing queue keeps its own type (`classic`, `quorum`, or `stream`).",
            },
        },
        "example": {
            "exchange": "notify.patient.add",
            "queue": "notify.patient.add.scheduling",
            "created": True,
            "queue_type": "quorum",
        },
    },
    "HealthOk": {
        "type": "object",
        "required": ["broker"],
        "properties": {"broker": {"type": "string", "enum": ["ok"]}},
    },
    "HealthUnavailable": {
        "type": "object",
        "required": ["broker"],
        "properties": {"broker": {"type": "string", "enum": ["unavailable"]}},
    },
    "BroadcastForm": {
        "type": "object",
        "description": FORM_FIELDS_PROSE,
        "additionalProperties": False,
        "required": ["csrf_token"],
        "properties": {
            "csrf_token": {"type": "string", "description": "The session's token, from the page's form."},
            "content_type": {"type": "string", "default": "application/json", "maxLength": SHORTSTR_MAX},
            "body": {"type": "string", "description": "The message, UTF-8; CRLF line ends become LF."},
        },
    },
    "DashboardForm": {
        "type": "object",
        "description": FORM_FIELDS_PROSE,
        "additionalProperties": False,
        "required": ["csrf_token", "action"],
        "properties": {
            "csrf_token": {"type": "string", "description": "The session's token, from the page's form."},
            "action": {"type": "string", "enum": ["login", "logout", "follow", "unfollow"]},
            "api_key": {"type": "string", "description": "`login`: the API key's secret."},
            "next": {"type": "string", "description": "`login`: the exchange whose page to show next."},
            "exchange": {"type": "string", "pattern": NAME_PATTERN, "description": "`follow`, `unfollow`."},
            "back": {"type": "string", "enum": ["page"], "description": "Return to the exchange's page."},
        },
    },
    "EventMessage": {
        "type": "object",
        "description": "The `data` of a message event. AMQP properties appear only when set.",
        "required": [
            "id",
            "exchange",
            "received",
            "timestamp",
            "headers",
            "size",
            "kind",
            "body",
            "truncated",
        ],
        "properties": {
            "id": {"type": "string", "description": "The event's `id`."},
            "exchange": {"type": "string"},
            "received": {
                "type": "string",
                "format": "date-time",
                "description": "When it was published: its AMQP `timestamp`, which the gateway sets at "
                "publish (to the second); for a message an AMQP client published without one, when an "
                "event server first read it.",
            },
            "content_type": {"type": "string"},
            "content_encoding": {"type": "string"},
            "message_id": {"type": "string"},
            "correlation_id": {"type": "string"},
            "type": {"type": "string"},
            "app_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time", "nullable": True},
            "headers": {"type": "object", "description": "The AMQP headers as JSON values."},
            "size": {"type": "integer", "description": "The whole body's size in bytes."},
            "kind": {"type": "string", "enum": ["json", "text", "binary"]},
            "body": {
                "type": "string",
                "nullable": True,
                "description": "The body as text (json and text kinds); null for binary.",
            },
            "preview": {
                "type": "string",
                "description": f"Binary only: the first {PREVIEW_BYTES} bytes in hex.",
            },
            "truncated": {"type": "boolean", "description": "The body was cut at `events_max_body` bytes."},
        },
    },
    "EventReady": {
        "type": "object",
        "description": "The `data` of the `ready` event: the replay is over and the stream is live. Its `id` "
        "(absent while the exchange has no message yet) is the position the stream has reached.",
        "properties": {
            "exchange": {"type": "string"},
            "history": {"type": "boolean", "description": "The exchange keeps history (`events_history`)."},
            "replayed": {"type": "integer", "description": "Messages sent before it."},
            "process": {"type": "integer", "description": "The event-server process serving the stream."},
        },
    },
    "EventGap": {
        "type": "object",
        "description": "The `data` of a `gap` event: messages after the client's id are missing. "
        "`retention`: the history stream dropped them (it resumes at `resumed_at`, the oldest it holds); "
        "`reconnected`: a live-only exchange lost its broker connection meanwhile; `unknown_id`: "
        "`Last-Event-ID` names no position of this exchange (the history is replayed instead); `reset`: "
        "`Last-Event-ID` lies beyond the end of the history stream (it was deleted and made anew, or the "
        "id is bogus): the history is replayed from its new positions and what comes next follows; "
        "forget the old id.",
        "properties": {
            "reason": {"type": "string", "enum": ["retention", "reconnected", "unknown_id", "reset"]},
            "last_event_id": {"type": "string", "nullable": True},
            "resumed_at": {"type": "string", "nullable": True},
        },
    },
    "EventClosing": {
        "type": "object",
        "description": "The `data` of a `closing` event: the gateway ends the stream on purpose.",
        "properties": {
            "reason": {
                "type": "string",
                "enum": ["max_lifetime", "shutdown", "reset"],
                "description": "`reset`: the history stream was deleted; reconnect without `Last-Event-ID` "
                "(its positions start anew).",
            },
            "retry_ms": {"type": "integer"},
        },
    },
}

RESPONSES = {
    "InternalError": {
        "description": "An unexpected failure; the gateway logs it. Outside development mode the body never "
        "carries a traceback: a short HTML page from the error middleware, or the JSON error `internal`.",
        "content": {
            JSON: {"schema": _ref("schemas", "Error")},
            "text/html": {"schema": {"type": "string"}},
        },
    },
}


# --- operations: what the route table does not say ----------------------------------


def _json(description, schema_name, headers=None):
    response = {"description": description, "content": {JSON: {"schema": _ref("schemas", schema_name)}}}
    if headers:
        response["headers"] = headers
    return response


HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
SEE_OTHER = {
    "description": "Done; the browser goes to `Location`.",
    "headers": {"Location": {"description": "The page to show next.", "schema": {"type": "string"}}},
}
# Browsers log in once (POST /dashboard/, action=login) and are then known by their session cookie.
BROWSER_SECURITY = [{"bearerAuth": []}, {"basicAuth": []}, {"dashboardSession": []}]
BINARY = MESSAGE_BODY_CONTENT

# By operation id (``hutch.web.http.operation``): the answers other than errors, the parameters other
# than the path's names, the request body and vendor extensions.  The path, the permission and
# the errors come from the route table; the prose from ``hutch.contract.openapi_text``.
OPERATIONS = {
    "broadcast": {
        "responses": {
            "202": _json(
                "Published (or, with `Idempotent-Replayed`, published before).", "BroadcastAccepted", REPLAYED
            )
        },
        "parameters": MESSAGE_PARAMETERS,
        "requestBody": MESSAGE_BODY,
        "x-hutch-header-family": AMQP_HEADER_FAMILY,
    },
    "notify": {
        "responses": {
            "202": _json(
                "Confirmed by the broker: every bound consumer queue holds the message (with "
                "`Idempotent-Replayed`: it did so for an earlier request with the same key).",
                "NotifyAccepted",
                REPLAYED,
            )
        },
        "parameters": MESSAGE_PARAMETERS,
        "requestBody": MESSAGE_BODY,
        "x-hutch-header-family": AMQP_HEADER_FAMILY,
    },
    "registerConsumer": {
        "responses": {
            "201": _json("The queue was created and bound.", "ConsumerQueue"),
            "200": _json("The queue existed (of whatever type); it is (still) bound.", "ConsumerQueue"),
        },
    },
    "call": {
        "responses": {
            "200": {
                "description": "The reply: its body as sent, `content_type` as `Content-Type` (default "
                f"`{DEFAULT_CONTENT_TYPE}`), `content_encoding` as `Content-Encoding` when it is an HTTP "
                "content coding, else as `X-Amqp-Content-Encoding`, and each AMQP "
                "header as a header named `X-Amqp-Header-` followed by the AMQP header's name (a family "
                "of headers, as for requests: `x-hutch-header-family`). A reply header `http_status` "
                "(100-599) sets the status instead of 200 and is not copied.",
                "headers": {
                    "Content-Encoding": {
                        "description": "The reply's content_encoding, when it is an HTTP content coding "
                        f"({', '.join(f'`{coding}`' for coding in sorted(HTTP_CODINGS))}).",
                        "schema": {"type": "string"},
                    },
                    "X-Amqp-Content-Encoding": {
                        "description": "The reply's content_encoding when it is no HTTP content coding "
                        "(py-amqp sets `utf-8` on text): as `Content-Encoding` it would make HTTP clients "
                        "fail to decode the body.",
                        "schema": {"type": "string"},
                    },
                },
                "content": BINARY,
            },
            "default": {
                "description": "The status the responder chose with its `http_status` header; "
                "the body and headers are the reply's, as for 200.",
                "content": BINARY,
            },
        },
        "parameters": [_ref("parameters", "XTimeout"), *MESSAGE_PARAMETERS],
        "requestBody": MESSAGE_BODY,
        "x-hutch-header-family": AMQP_HEADER_FAMILY,
        # Answers about the responder side that a client must expect, although their statuses are 5xx.
        "x-hutch-expected-errors": [NoResponder.code, RpcTimeout.code],
    },
    "events": {
        "responses": {
            "200": {
                "description": "The event stream (`Cache-Control: no-cache`).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
        "parameters": [
            _ref("parameters", "LastEventId"),
            _ref("parameters", "last_event_id"),
            _ref("parameters", "ticket"),
        ],
    },
    "dashboard": {"responses": {"200": {"description": "The page.", "content": HTML_PAGE}, "303": SEE_OTHER}},
    "dashboardTicket": {
        "responses": {
            "200": {
                "description": "The ticket (`Cache-Control: no-store`).",
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["ticket", "expires_in"],
                            "properties": {"ticket": {"type": "string"}, "expires_in": {"type": "number"}},
                        }
                    }
                },
            }
        },
    },
    "dashboardBroadcast": {
        "responses": {
            "202": _json("Published (`Accept: application/json`).", "BroadcastAccepted"),
            "303": SEE_OTHER,
        },
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _ref("schemas", "BroadcastForm")}},
        },
    },
    "dashboardIndex": {
        "responses": {"200": {"description": "The page.", "content": HTML_PAGE}},
        "parameters": [
            {
                "name": "next",
                "in": "query",
                "required": False,
                "description": "The exchange whose page to show after logging in. Only an exchange name "
                f"(1-{NAME_MAX} of `A-Z a-z 0-9 _ . : -`, not `amq.*`) is used; any other value, empty "
                "included, is ignored and the login leads to this index: a stale or mangled link still "
                "shows the form.",
                "schema": {"type": "string"},
            }
        ],
    },
    "dashboardAct": {
        "responses": {"303": SEE_OTHER},
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _ref("schemas", "DashboardForm")}},
        },
    },
    "dashboardAsset": {
        "responses": {
            "200": {
                "description": "The file.",
                "headers": {"ETag": {"schema": {"type": "string"}}},
                "content": {media_type: {"schema": {"type": "string"}} for media_type in ASSETS.values()},
            },
            "304": {"description": "Not modified (`If-None-Match`)."},
        },
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": list(ASSETS)},
            }
        ],
    },
    "health": {
        "responses": {
            "200": _json("The broker is reachable.", "HealthOk"),
            "503": _json(
                "The broker is unreachable or has blocked publishing.",
                "HealthUnavailable",
                {"Retry-After": {**RESPONSE_HEADERS["RetryAfter"], "required": True}},
            ),
        },
    },
    "openapi": {
        "responses": {
            "200": {
                "description": "The OpenAPI 3.0.3 document.",
                "content": {JSON: {"schema": {"type": "object"}}},
            }
        },
    },
    "reference": {
        "responses": {"200": {"description": "The page.", "content": HTML_PAGE}},
    },
    "referenceAsset": {
        "responses": {
            "200": {
                "description": "The file.",
                "headers": {"ETag": {"schema": {"type": "string"}}},
                "content": {kind: {"schema": {"type": "string"}} for kind, _ in REFERENCE_ASSETS.values()},
            },
            "304": {"description": "Not modified (`If-None-Match`)."},
        },
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": list(REFERENCE_ASSETS)},
            }
        ],
    },
    "index": {
        "responses": {
            "200": {
                "description": "The gateway's links; `{name}` placeholders are path parameters.",
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["links"],
                            "properties": {
                                "links": {"type": "object", "additionalProperties": {"type": "string"}}
                            },
                        },
                        "example": {
                            "links": {"openapi": "/gateway/openapi.json", "health": "/gateway/health"}
                        },
                    }
                },
            },
            "303": {
                "description": "A browser: go to the dashboard.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
        },
    },
    "metrics": {
        "responses": {
            "200": {
                "description": "The metrics.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            }
        },
    },
}

# --- push delivery (hutch.delivery): its schemas and operations ---------------------------
from hutch.delivery.store import MAX_DELAY  # noqa: E402 - with the block it serves

_URL = {"type": "string", "description": "An http(s) URL starting with a `push_allow` prefix."}
_PUSH_CONFIG = {
    "url": _URL,
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8},
    "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 300, "default": 15},
    "retry_schedule": {
        "type": "array",
        "maxItems": 32,
        "items": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_DELAY},
        "default": [1, 5, 30, 120, 600, 1800, 3600, 10800],
    },
}
_PUSH_SHOWN = {
    "exchange": {"type": "string"},
    "consumer": {"type": "string"},
    "queue": {"type": "string"},
    **_PUSH_CONFIG,
    "created_at": {"type": "string"},
    "updated_at": {"type": "string"},
}
SCHEMAS.update(
    {
        "PushRequest": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": _PUSH_CONFIG,
        },
        "PushSubscription": {
            "type": "object",
            "required": ["exchange", "consumer", "queue", "url"],
            "properties": {**_PUSH_SHOWN, "secret": {"type": "string", "description": "`whsec_...`, once."}},
        },
        "PushState": {
            "type": "object",
            "required": ["exchange", "consumer", "url", "delivered", "failed_attempts"],
            "properties": {
                **_PUSH_SHOWN,
                "delivered": {"type": "integer"},
                "failed_attempts": {"type": "integer"},
                "dead_letters": {"type": "integer", "nullable": True},
                "other_consumers": {
                    "type": "integer",
                    "nullable": True,
                    "description": "AMQP consumers of the queue besides the delivery processes (counted"
                    " within a few seconds); each takes messages the URL never sees: keep it 0.",
                },
                "last_success_at": {"type": "string", "nullable": True},
                "last_failure": {"type": "object", "nullable": True},
            },
        },
        "Secret": {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}},
        "DeadLetters": {
            "type": "object",
            "required": ["dead_letters"],
            "properties": {"dead_letters": {"type": "array", "items": {"type": "object"}}},
        },
        "Redelivered": {"type": "object", "properties": {"redelivered": {"type": "integer"}}},
        "Dropped": {"type": "object", "properties": {"dropped": {"type": "integer"}}},
    }
)
OPERATIONS.update(
    {
        "putPush": {
            "x-hutch-policy-refusals": [TargetRefused.code],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("schemas", "PushRequest")}}},
            "responses": {
                "201": _json("Created; `secret` is shown this once.", "PushSubscription"),
                "200": _json("Updated (the secret is kept and not shown).", "PushSubscription"),
            },
        },
        "getPush": {"responses": {"200": _json("The subscription and its state.", "PushState")}},
        "deletePush": {"responses": {"204": {"description": "No longer pushed."}}},
        "rotatePushSecret": {"responses": {"200": _json("The new secret, shown once.", "Secret")}},
        "listDeadLetters": {
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
            ],
            "responses": {"200": _json("Oldest first.", "DeadLetters")},
        },
        "redeliverDeadLetters": {"responses": {"200": _json("How many were queued again.", "Redelivered")}},
        "dropDeadLetters": {"responses": {"200": _json("How many were dropped.", "Dropped")}},
        "putResponder": {
            "x-hutch-policy-refusals": [TargetRefused.code],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("schemas", "ResponderRequest")}},
            },
            "responses": {
                "201": _json("Created; `secret` is shown this once.", "Responder"),
                "200": _json("Updated (the secret is kept and not shown).", "Responder"),
            },
        },
        "getResponder": {"responses": {"200": _json("The responder and its state.", "Responder")}},
        "deleteResponder": {"responses": {"204": {"description": "No longer called."}}},
        "pushDashboard": {"responses": {"200": {"description": "The page.", "content": HTML_PAGE}}},
        "pushDashboardAct": {
            "responses": {"303": SEE_OTHER},
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["csrf_token", "action", "exchange", "consumer"],
                            "additionalProperties": False,
                            "properties": {
                                "csrf_token": {"type": "string"},
                                "action": {"type": "string", "enum": ["redeliver", "drop"]},
                                "exchange": {"type": "string"},
                                "consumer": {"type": "string"},
                            },
                        }
                    }
                },
            },
        },
    }
)
SCHEMAS.update(
    {
        "ResponderRequest": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {"url": _URL, "concurrency": _PUSH_CONFIG["concurrency"]},
        },
        "Responder": {
            "type": "object",
            "required": ["exchange", "routing_key", "url"],
            "properties": {
                "exchange": {"type": "string"},
                "routing_key": {"type": "string"},
                "queue": {"type": "string", "description": "`{exchange}.{routing_key}.http`"},
                "url": _URL,
                "concurrency": _PUSH_CONFIG["concurrency"],
                "secret": {"type": "string", "description": "`whsec_...`, once (201 only)."},
                "delivered": {"type": "integer"},
                "failed_attempts": {"type": "integer"},
                "last_success_at": {"type": "string", "nullable": True},
                "last_failure": {"type": "object", "nullable": True},
            },
        },
    }
)


# The event tier (``hutch.events``) serves this path, not an app module: its route as data.
# --- bulk publishing: the batch operations' body and answer -----------------------------------

MEDIA_TYPE_PATTERN = f"^{MEDIA_TYPE.pattern}$"  # what hutch.messages checks a content type with
BATCH_SHORTSTR = {
    "type": "string",
    "nullable": True,
    "minLength": 1,
    "maxLength": SHORTSTR_MAX,
    "pattern": PRINTABLE_ASCII,
}
BATCH_LINE = {
    "type": "object",
    "description": "One line of the NDJSON body: one message. Exactly one of `body` and `body_base64`; "
    "an optional field that is null is as if it were absent.",
    "additionalProperties": False,
    "oneOf": [{"required": ["body"]}, {"required": ["body_base64"]}],
    "properties": {
        "body": {"type": "string", "description": "The message as text, published as UTF-8."},
        "body_base64": {"type": "string", "format": "byte", "description": "The message's bytes."},
        "content_type": {
            "type": "string",
            "nullable": True,
            "maxLength": SHORTSTR_MAX,
            "pattern": MEDIA_TYPE_PATTERN,
            "default": DEFAULT_CONTENT_TYPE,
        },
        "headers": {
            "type": "object",
            "nullable": True,
            "description": "AMQP headers; a name is any text of at most 255 bytes of UTF-8.",
            "maxProperties": MAX_HEADERS,
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_HEADER_VALUE,
                "pattern": PRINTABLE_ASCII,
            },
        },
        "idempotency_key": {**BATCH_SHORTSTR, "description": "As `Idempotency-Key`; also the `message_id`."},
        "correlation_id": BATCH_SHORTSTR,
    },
}
SCHEMAS["BatchResults"] = {
    "type": "object",
    "required": ["results", "accepted", "failed"],
    "properties": {
        "results": {
            "type": "array",
            "description": "One result a message, in the body's order.",
            "items": {
                "type": "object",
                "required": ["status", "message_id"],
                "properties": {
                    "status": {
                        "type": "integer",
                        "description": "202 (confirmed), or the line's error status.",
                    },
                    "message_id": {"type": "string"},
                    "routed": {"type": "boolean", "description": "Broadcast: a queue got it."},
                    "replayed": {
                        "type": "boolean",
                        "description": "The first answer for its idempotency_key.",
                    },
                    "error": {"type": "string", "description": "A failed line's error code."},
                    "detail": {"type": "string"},
                },
            },
        },
        "accepted": {"type": "integer", "description": "Results with status 202."},
        "failed": {"type": "integer", "description": "The other results."},
    },
    "example": {
        "results": [
            {"status": 202, "message_id": "order-1"},
            {"status": 503, "message_id": "order-2", "error": "broker_unavailable", "detail": "..."},
        ],
        "accepted": 1,
        "failed": 1,
    },
}
SCHEMAS["BatchLine"] = BATCH_LINE
BATCH_BODY = {
    "description": "NDJSON: the array's items, one JSON object (`BatchLine`) a line; blank lines carry no "
    f"message. At most `max_batch_messages` (default {Settings.max_batch_messages}) messages and "
    f"`max_batch_bytes` (default {Settings.max_batch_bytes} bytes), else 413.",
    "required": True,
    "content": {
        "application/x-ndjson": {
            "schema": {
                "type": "array",
                "minItems": 1,  # the limits (413, not 400) are in the description, not maxItems
                "items": _ref("schemas", "BatchLine"),
            }
        }
    },
}
for _batch_operation in ("broadcastBatch", "notifyBatch"):
    OPERATIONS[_batch_operation] = {
        "responses": {"200": _json("Every line's outcome, in order.", "BatchResults")},
        "requestBody": BATCH_BODY,
    }


EVENTS_PATH = "/events/{exchange}"
EVENTS_VIEW = types.SimpleNamespace(
    operation_id="events", raises=(PreconditionFailed, BrokerUnavailable, TooManyStreams)
)
EVENTS_ROUTE = types.SimpleNamespace(
    permissions={"GET": ("watch",)},
    browser=True,  # the dashboard's session (its cookie, or a ticket made from it) stands for the key
    page=None,
    reads_session=True,  # the event servers read the session's store when no key or ticket is sent
    views={"GET": EVENTS_VIEW},
)


def route_operation(path, method, route, view):
    """One operation of the document, from a route of the table and its view."""
    names = re.findall(r"{(\w+)}", path)
    idioms = route.permissions.get(method, ())
    tag, summary, description = text.OPERATIONS[view.operation_id]
    extra = OPERATIONS[view.operation_id]
    # Before the route is chosen (405): JSON always.  Once it is (a bad name, then the route's own
    # errors): a page for a browser where the route has pages.
    dispatch = (MethodNotAllowed, *(NAME_ERRORS if names else ()))
    guarded = (
        *(AUTH_ERRORS if idioms else ()),
        *((SessionStoreUnavailable,) if route.reads_session else ()),
        *view.raises,
    )
    operation = {
        "operationId": view.operation_id,
        "tags": [tag],
        "summary": summary,
        "description": prose(description),
        "parameters": [
            *(_ref("parameters", name) for name in names if name in PARAMETERS),
            *extra.get("parameters", ()),
        ],
        "responses": {
            **extra["responses"],
            **error_responses(*dispatch, *guarded, pages=(*guarded, *NAME_ERRORS) if route.page else ()),
        },
    }
    if "requestBody" in extra:
        operation["requestBody"] = extra["requestBody"]
    operation.update({key: value for key, value in extra.items() if key.startswith("x-")})
    if not idioms:
        operation["security"] = []
        return operation
    resource = "/".join(f"{{{name}}}" for name in ("exchange", "routing_key") if name in names)
    permission = " ".join(f"{idiom}:{resource}" if resource else idiom for idiom in idioms)
    operation["description"] += (
        f"\n\nAPI key permission (unless the gateway runs with `auth = off`): `{permission}`."
    )
    operation["x-hutch-permission"] = permission
    if route.browser:
        operation["security"] = BROWSER_SECURITY
    return operation


def paths(apps):
    """The document's paths from the route table ``{mount segment: Routes}``."""
    documented = {}
    for path, method, route, view in route_table(apps):
        if getattr(view, "operation_id", None) is not None:  # not a test's own app module
            documented.setdefault(path, {})[method.lower()] = route_operation(path, method, route, view)
    documented[EVENTS_PATH] = {
        "get": route_operation(EVENTS_PATH, "GET", EVENTS_ROUTE, EVENTS_ROUTE.views["GET"])
    }
    return documented


SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer {secret}`: the API key's secret alone.",
    },
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "`Authorization: Basic base64({name}:{secret})`: the API key's name as the user "
        "and its secret as the password.",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "hutch_session",
        "description": "The dashboard's session after logging in with an API key (`POST /dashboard/`, "
        "`action=login`): the browser's EventSource cannot send `Authorization`. The session keeps the "
        "key's name and a fingerprint of its secret; the key's permissions apply, and a key removed or "
        "given a new secret ends the session at its next request. With `session.type = ext:redis` the "
        "cookie holds only a signed id and logging out deletes the session on the server. A request "
        "with `Authorization` is judged by it alone.",
    },
}

BASE = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "Hutch",
        "version": CONTRACT_VERSION,
        "description": text.DESCRIPTION,
        "license": {"name": "MIT"},
    },
    "tags": [
        {"name": "broadcast", "description": "Fire-and-forget to whoever listens now."},
        {"name": "notify", "description": "Nothing lost: durable queues, one per consumer system."},
        {"name": "rpc", "description": "An HTTP call answered by an AMQP responder."},
        {"name": "dashboard", "description": "Live view of broadcast exchanges."},
        {"name": "dashboard UI", "description": "The dashboard's pages, forms and assets for browsers."},
        {"name": "operations", "description": "Health and this document."},
    ],
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "parameters": PARAMETERS,
        "headers": {name: dict(header) for name, header in RESPONSE_HEADERS.items() if name != "RetryAfter"},
        "securitySchemes": SECURITY_SCHEMES,
    },
    # Either scheme will do; /health and /openapi.json override this with no requirement.
    "security": [{"bearerAuth": []}, {"basicAuth": []}],
}


@functools.lru_cache(maxsize=4)
def _document(apps_directory):
    return {**BASE, "paths": paths(load_app_modules(apps_directory))}


def document(server_url, apps_directory=APPS_DIRECTORY):
    """The OpenAPI document for the gateway serving ``apps_directory`` at ``server_url`` (its SCRIPT_NAME)."""
    return {
        **_document(str(apps_directory)),
        "servers": [{"url": server_url or "/", "description": "this gateway"}],
    }
