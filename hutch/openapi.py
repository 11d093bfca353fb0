"""The OpenAPI 3.0.3 description of the HTTP contract (the gateway's public interface).

The document is built once, at import; ``document(server_url)`` only adds
the ``servers`` entry, so serving ``/openapi.json`` costs a shallow copy.
Error responses are built from the error classes themselves, so their
statuses, codes and headers cannot drift from what the code raises.
Callers must treat the returned dict as read-only: its parts are shared.
"""

from . import errors as hutch_errors
from .errors import (
    BadCsrfToken,
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    HutchError,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    IdempotencyUnavailable,
    InvalidHeader,
    InvalidMessage,
    InvalidName,
    MethodNotAllowed,
    NoResponder,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PublishNacked,
    RequestTimeout,
    ReservedName,
    RpcTimeout,
    SessionStoreUnavailable,
    TooManyStreams,
    Unauthorized,
    Unroutable,
    UriTooLong,
)

OPENAPI_VERSION = "3.0.3"
CONTRACT_VERSION = "1"
NAME_PATTERN = "^[A-Za-z0-9_.:-]{1,127}$"
PRINTABLE_ASCII = "^[\\x20-\\x7e]*$"  # what hutch.messages accepts in a mapped header
JSON = "application/json"


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

CODE_MEANINGS = {
    "internal": "An unexpected failure inside the gateway; it is logged, never shown.",
    "bad_request": "The request is malformed: a bad Content-Length, or (answered by the web server) "
    "a malformed header, a header field over 8190 bytes or more than 100 header fields.",
    "invalid_name": "An exchange, routing key or consumer name is not 1-127 of `A-Z a-z 0-9 _ . : -`.",
    "invalid_header": "A header value is not printable ASCII, too long, or (X-Timeout) not a number > 0.",
    "unauthorized": "No valid API key: the Authorization header is missing, malformed or unknown.",
    "forbidden": "The API key lacks the permission for this idiom and name, or the broker refused access.",
    "reserved_name": "The name starts with `amq.`, reserved by RabbitMQ.",
    "bad_csrf_token": "A dashboard form's CSRF token is missing or does not match the session.",
    "not_found": "No such route (unknown path, missing segment, or a slash after a name).",
    "method_not_allowed": "The route exists but not for this method; `Allow` lists the methods.",
    "payload_too_large": "The body is larger than `max_body_bytes` (answered by the gateway), or than "
    "the web server accepts at all (`max_body_bytes` + 64 KiB under `hutch serve`; answered by the server).",
    "request_timeout": "Answered by the web server: the headers or the body did not arrive in time "
    "(slow-client protection).",
    "uri_too_long": "Answered by the web server: the request line is over 8190 bytes.",
    "broker_unavailable": "The broker cannot be reached, blocked publishing, or did not answer in time, "
    "or the connection to its node was lost with the request in flight (not confirmed: retry).",
    "nacked": "The broker refused to take responsibility for the message (publisher nack).",
    "unroutable": "No queue is bound to the notify exchange; nothing was stored.",
    "precondition_failed": "The exchange or queue exists with another type or durability.",
    "no_responder": (
        "No responder queue is bound for the exchange and routing key, or the exchange is missing. "
        "An expected answer of the call (`x-hutch-expected-errors`), not a failure of the gateway."
    ),
    "timeout": "The responder did not reply within the timeout. An expected answer of the call "
    "(`x-hutch-expected-errors`), not a failure of the gateway.",
    "too_many_streams": "This gateway process holds as many event streams as it may (or is stopping).",
    "invalid_message": "A dashboard form's message does not match its content type (e.g. invalid JSON).",
    "idempotency_key_reused": "The `Idempotency-Key` was used before with another body or Content-Type.",
    "idempotency_in_flight": (
        "A request with this `Idempotency-Key` is still publishing after `publish_timeout`; retry."
    ),
    "idempotency_unavailable": (
        "The idempotency store (Redis) is unreachable: a keyed request is refused rather than risk a "
        "duplicate. Requests without `Idempotency-Key` still work."
    ),
    "session_store_unavailable": "The dashboard's session store (Redis) is unreachable; API routes work.",
}


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


def _error_response(status, classes, html):
    codes = [cls.code for cls in classes]
    lines = [f"- `{cls.code}`: {CODE_MEANINGS.get(cls.code, cls.detail)}" for cls in classes]
    schema = {
        "allOf": [
            _ref("schemas", "Error"),
            {"type": "object", "properties": {"error": {"type": "string", "enum": codes}}},
        ]
    }
    response = {"description": "\n".join(lines), "content": {JSON: {"schema": schema}}}
    if html:
        response["description"] += "\n\nAn HTML page instead of JSON when the client prefers text/html."
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


def error_responses(*classes, html=False):
    """``{status: response}`` for the ``HutchError`` classes an operation may raise.

    The web server's own errors (``SERVER_ERRORS``) are added to every operation.
    ``html``: the dashboard's views answer browsers with an error page instead.
    """
    by_status = {}
    for cls in (*classes, *SERVER_ERRORS):
        if cls not in by_status.get(cls.status, []):
            by_status.setdefault(cls.status, []).append(cls)
    responses = {
        str(status): _error_response(status, group, html) for status, group in sorted(by_status.items())
    }
    responses["500"] = _ref("responses", "InternalError")
    return responses


NAME_ERRORS = (InvalidName, ReservedName)
AUTH_ERRORS = (Unauthorized, Forbidden)
BODY_ERRORS = (BadRequest, InvalidHeader, PayloadTooLarge)
PUBLISH_FAILURES = (BrokerUnavailable, PublishNacked)
IDEMPOTENCY_ERRORS = (IdempotencyKeyReused, IdempotencyInFlight, IdempotencyUnavailable)
REPLAYED = {"Idempotent-Replayed": _ref("headers", "IdempotentReplayed")}


# --- parameters ----------------------------------------------------------------


def _name_parameter(name, what):
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}: 1-127 characters of `A-Z a-z 0-9 _ . : -` (else 400 `invalid_name`). "
        "Names starting with `amq.` are reserved by RabbitMQ (403 `reserved_name`).",
        "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 127},
    }


def _header(name, description, schema=None):
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": 255, "pattern": PRINTABLE_ASCII},
    }


PARAMETERS = {
    "exchange": _name_parameter("exchange", "exchange name"),
    "routing_key": _name_parameter("routing_key", "routing key (a responder's queue is bound with it)"),
    "consumer": _name_parameter("consumer", "consumer system's name; its queue is `{exchange}.{consumer}`"),
    "ContentEncoding": _header(
        "Content-Encoding",
        "Becomes the message's `content_encoding` (printable ASCII, at most 255 characters). "
        "The gateway does not decode the body.",
    ),
    "IdempotencyKey": _header(
        "Idempotency-Key",
        "Becomes the message's `message_id` (printable ASCII, at most 255 characters); without it the "
        "gateway makes a new UUID. With the `idempotency_url` setting, broadcast and notify publish once "
        "per key (scoped to the API key name and exchange) within `idempotency_ttl`: a repeat gets the "
        "first 2xx answer again with `Idempotent-Replayed: true`, a concurrent repeat waits for it (409 "
        "`idempotency_in_flight` if the first is still publishing after `publish_timeout`), a failed "
        "attempt is not remembered. Without that setting the gateway does not deduplicate: consumers "
        "may, by `message_id`.",
    ),
    "CorrelationId": _header(
        "X-Correlation-Id",
        "Becomes the message's `correlation_id` (printable ASCII, at most 255 characters). "
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
        "schema": {"type": "string", "maxLength": 300},
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
    "maxHeaders": 64,
    "schema": {"type": "string", "maxLength": 4096, "pattern": PRINTABLE_ASCII},
}
AMQP_HEADERS_PROSE = (
    "\n\nAMQP headers: every request header whose name starts with `X-Amqp-Header-` becomes an AMQP "
    "message header named by the rest of the header name, lower-cased (`X-Amqp-Header-Source: lab` "
    'sets `headers["source"] = "lab"`). Values are printable ASCII of at most 4096 characters; at most '
    "64 such headers (else 400 `invalid_header`). Described by `x-hutch-header-family`."
)

MESSAGE_BODY = {
    "description": "The message body, bytes as sent, of any media type. `Content-Type` becomes the "
    "message's `content_type` (default `application/octet-stream`; printable ASCII, at most 255 "
    "characters). At most `max_body_bytes` (default 1 MiB = 1048576 bytes), else 413 "
    "`payload_too_large`. Send `Content-Length` or chunked transfer encoding; without either the body "
    "is empty. The client cannot set user_id, reply_to, delivery_mode or any other AMQP property.",
    "required": False,
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
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
            "content_type": {"type": "string", "default": "application/json", "maxLength": 255},
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
            "received": {"type": "string", "format": "date-time", "description": "When the gateway got it."},
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
            "preview": {"type": "string", "description": "Binary only: the first 48 bytes in hex."},
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
        "`Last-Event-ID` names no position of this exchange (the history is replayed instead).",
        "properties": {
            "reason": {"type": "string", "enum": ["retention", "reconnected", "unknown_id"]},
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
                "description": "`reset`: the history stream was deleted; reconnecting starts anew.",
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


# --- operations ------------------------------------------------------------------


def _json(description, schema_name, headers=None):
    response = {"description": description, "content": {JSON: {"schema": _ref("schemas", schema_name)}}}
    if headers:
        response["headers"] = headers
    return response


def _operation(
    operation_id,
    tag,
    summary,
    description,
    responses,
    parameters=(),
    body=None,
    permission=None,
    security=None,
):
    """One operation; ``permission`` is the API key permission it needs (None: open to all).

    ``security`` replaces the document's requirement (Bearer or Basic), e.g. to accept the
    dashboard's session too.
    """
    operation = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        "parameters": list(parameters),
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = body
    if permission is None:
        operation["security"] = []
    else:
        operation["description"] += (
            f"\n\nAPI key permission (unless the gateway runs with `auth = off`): `{permission}`."
        )
        operation["x-hutch-permission"] = permission
        if security is not None:
            operation["security"] = security
    return operation


BROADCAST = _operation(
    "broadcast",
    "broadcast",
    "Publish to a transient fanout exchange",
    "The Broadcast idiom: publish the body to the fanout exchange `{exchange}`, declared if missing "
    "as the seed does (durable=False, auto_delete=True). At most once: nobody listening is fine, "
    "`routed` says whether at least one queue got it. Answers once the broker has taken the message."
    + AMQP_HEADERS_PROSE,
    {
        "202": _json(
            "Published (or, with `Idempotent-Replayed`, published before).", "BroadcastAccepted", REPLAYED
        ),
        **error_responses(
            *NAME_ERRORS,
            *AUTH_ERRORS,
            *BODY_ERRORS,
            MethodNotAllowed,
            PreconditionFailed,
            *PUBLISH_FAILURES,
            *IDEMPOTENCY_ERRORS,
        ),
    },
    [_ref("parameters", "exchange"), *MESSAGE_PARAMETERS],
    MESSAGE_BODY,
    permission="broadcast:{exchange}",
)
BROADCAST["x-hutch-header-family"] = AMQP_HEADER_FAMILY

NOTIFY = _operation(
    "notify",
    "notify",
    "Publish a persistent message every consumer queue keeps",
    "The Notify idiom: a persistent (delivery_mode=2), mandatory publish to the fanout exchange "
    "`{exchange}`, declared if missing as the seed does (durable=True, auto_delete=False). 202 only "
    "after the broker's publisher confirm; a message no queue is bound for is an error (409 "
    "`unroutable`, nothing was stored), never a silent 202." + AMQP_HEADERS_PROSE,
    {
        "202": _json(
            "Confirmed by the broker: every bound consumer queue holds the message (with "
            "`Idempotent-Replayed`: it did so for an earlier request with the same key).",
            "NotifyAccepted",
            REPLAYED,
        ),
        **error_responses(
            *NAME_ERRORS,
            *AUTH_ERRORS,
            *BODY_ERRORS,
            MethodNotAllowed,
            Unroutable,
            PreconditionFailed,
            *PUBLISH_FAILURES,
            *IDEMPOTENCY_ERRORS,
        ),
    },
    [_ref("parameters", "exchange"), *MESSAGE_PARAMETERS],
    MESSAGE_BODY,
    permission="notify:{exchange}",
)
NOTIFY["x-hutch-header-family"] = AMQP_HEADER_FAMILY

REGISTER = _operation(
    "registerConsumer",
    "notify",
    "Register a consumer system's durable queue",
    "Declare the durable queue `{exchange}.{consumer}` (durable=True, exclusive=False, "
    "auto_delete=False, `x-queue-type` from the gateway's `notify_queue_type`: `quorum`, replicated "
    "over a cluster's nodes, or `classic`) bound to the notify exchange, declaring the exchange as "
    "notify does. Idempotent. From then on the queue keeps every notify message for the consumer, even "
    "while it is not running. A queue that exists with another type is kept as it is, bound, and "
    "answered 200 with its `queue_type`; one that exists with other arguments or durability is a 409. "
    "The request body, if any, is ignored.",
    {
        "201": _json("The queue was created and bound.", "ConsumerQueue"),
        "200": _json("The queue existed (of whatever type); it is (still) bound.", "ConsumerQueue"),
        **error_responses(
            *NAME_ERRORS, *AUTH_ERRORS, MethodNotAllowed, PreconditionFailed, BrokerUnavailable
        ),
    },
    [_ref("parameters", "exchange"), _ref("parameters", "consumer")],
    permission="register:{exchange}",
)

RPC = _operation(
    "call",
    "rpc",
    "Call a responder over AMQP and return its reply",
    "The Request/Response idiom: publish the body to the direct exchange `{exchange}` with "
    "`{routing_key}`, `reply_to` and a `correlation_id` of the gateway's, expiring with the timeout, "
    "and block until the reply. Responders declare the exchange; the gateway never declares or alters "
    "it. Replies written the seed's way (without copying `correlation_id`) work too.\n\n"
    "503 `no_responder` and 504 `timeout` are expected answers of a call, listed in "
    "`x-hutch-expected-errors`: they say what the responder side did (nothing is bound, or no reply "
    "came in time), not that the gateway failed; clients and tools should treat them as answers."
    + AMQP_HEADERS_PROSE,
    {
        "200": {
            "description": "The reply: its body as sent, `content_type` as `Content-Type` (default "
            "`application/octet-stream`), `content_encoding` as `Content-Encoding`, and each AMQP header "
            "as a header named `X-Amqp-Header-` followed by the AMQP header's name (a family of headers, "
            "as for requests: `x-hutch-header-family`). A reply header `http_status` (100-599) sets the "
            "status instead of 200 and is not copied.",
            "headers": {
                "Content-Encoding": {
                    "description": "The reply's content_encoding.",
                    "schema": {"type": "string"},
                },
            },
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "default": {
            "description": "The status the responder chose with its `http_status` header; "
            "the body and headers are the reply's, as for 200.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(
            *NAME_ERRORS,
            *AUTH_ERRORS,
            *BODY_ERRORS,
            MethodNotAllowed,
            PreconditionFailed,
            BrokerUnavailable,
            NoResponder,
            RpcTimeout,
        ),
    },
    [
        _ref("parameters", "exchange"),
        _ref("parameters", "routing_key"),
        _ref("parameters", "XTimeout"),
        *MESSAGE_PARAMETERS,
    ],
    MESSAGE_BODY,
    permission="rpc:{exchange}/{routing_key}",
)
RPC["x-hutch-header-family"] = AMQP_HEADER_FAMILY
# Answers about the responder side that a client must expect, although their statuses are 5xx.
RPC["x-hutch-expected-errors"] = [NoResponder.code, RpcTimeout.code]

EVENTS_DESCRIPTION = """\
The messages published to the broadcast exchange `{exchange}` (declared as for broadcast) as
Server-Sent Events, served by the gateway's asyncio event servers on the same port and mount
point. Each event-server process consumes a watched exchange once and fans it out.

Event ids are positions. On an exchange matching `events_history` they are the offsets of the
exchange's RabbitMQ stream (`"1234"`), the same on every process and host: a stream opened
without `Last-Event-ID` first replays up to `events_history_count` retained messages, oldest
first; with `Last-Event-ID: n` it sends exactly the messages after `n`, whichever process serves
it, and an `EventGap` (`retention`) only when the stream's retention dropped some of them. Such
an exchange's stream queue is bound as soon as the exchange is declared, by a broadcast or by the
first viewer: a broadcast to it is always `routed`, and the auto-delete exchange is never deleted.
Other exchanges are live-only: ids are `~{feed}.{seq}` of one process, and a stream replays
nothing.

A stream sends, in order: `retry: 2000`; a `gap` event when needed; the replayed messages; a
`ready` event (`EventReady`); then each new message as one unnamed event (`message` to
EventSource) whose `data` is `EventMessage` JSON. A `: heartbeat` comment follows every
`events_heartbeat` seconds of silence. A client that falls `events_max_pending` bytes behind is
cut off (it reconnects with its last id and loses nothing). If the broker connection drops, the
stream stays open and continues where it was once the event server has reconnected.

The stream ends with a `closing` event (`EventClosing`: after about `events_max_lifetime` seconds,
or at shutdown; reconnect with the last id). A browser, which cannot send `Authorization` from
EventSource, passes the `ticket` the dashboard's `GET /dashboard/{exchange}/ticket` gives it.\
"""

EVENTS = _operation(
    "events",
    "dashboard",
    "Stream a broadcast exchange's messages as Server-Sent Events",
    EVENTS_DESCRIPTION,
    {
        "200": {
            "description": "The event stream (`Cache-Control: no-cache`).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(
            *NAME_ERRORS,
            *AUTH_ERRORS,
            MethodNotAllowed,
            PreconditionFailed,
            BrokerUnavailable,
            TooManyStreams,
        ),
    },
    [
        _ref("parameters", "exchange"),
        _ref("parameters", "LastEventId"),
        _ref("parameters", "last_event_id"),
        _ref("parameters", "ticket"),
    ],
    permission="watch:{exchange}",
    security=[{"bearerAuth": []}, {"basicAuth": []}, {"dashboardSession": []}],
)

HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
SEE_OTHER = {
    "description": "Done; the browser goes to `Location`.",
    "headers": {"Location": {"description": "The page to show next.", "schema": {"type": "string"}}},
}
BROWSER_ONLY = "The dashboard's browser interface, outside the API contract: it may change. "
# Browsers log in once (POST /dashboard/, action=login) and are then known by their session cookie.
BROWSER_SECURITY = [{"bearerAuth": []}, {"basicAuth": []}, {"dashboardSession": []}]

DASHBOARD = _operation(
    "dashboard",
    "dashboard",
    "An HTML page showing the exchange's messages live",
    "The browser dashboard: the broadcast exchange's messages, newest first, fed by "
    "`/events/{exchange}`, with a form to broadcast and a button to follow the exchange. A browser "
    "that has not logged in is sent to the login form (303 to `/dashboard/?next={exchange}`).",
    {
        "200": {"description": "The page.", "content": HTML_PAGE},
        "303": SEE_OTHER,
        **error_responses(*NAME_ERRORS, *AUTH_ERRORS, MethodNotAllowed, SessionStoreUnavailable, html=True),
    },
    [_ref("parameters", "exchange")],
    permission="watch:{exchange}",
    security=BROWSER_SECURITY,
)

DASHBOARD_TICKET = _operation(
    "dashboardTicket",
    "dashboard UI",
    "A short-lived ticket that opens the exchange's event stream",
    BROWSER_ONLY + "The page's EventSource cannot send `Authorization`, and the event servers do not read "
    "the session: the page gets this ticket (signed with the session secret, naming the logged-in key "
    "and the exchange, valid `events_ticket_ttl` seconds) before each connection and passes it as "
    "`/events/{exchange}?ticket=...`.",
    {
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
        },
        **error_responses(*NAME_ERRORS, *AUTH_ERRORS, MethodNotAllowed, SessionStoreUnavailable),
    },
    [_ref("parameters", "exchange")],
    permission="watch:{exchange}",
    security=BROWSER_SECURITY,
)

DASHBOARD_PUBLISH = _operation(
    "dashboardBroadcast",
    "dashboard UI",
    "Broadcast a message from the dashboard's form",
    BROWSER_ONLY + "Publishes the form's `body` as `/broadcast/{exchange}` does, with the form's "
    "`content_type` (JSON bodies must parse) and `app_id` `hutch-dashboard`. A browser is sent back "
    "to the page (303); a script that prefers `application/json` gets the 202 answer of broadcast.",
    {
        "202": _json("Published (`Accept: application/json`).", "BroadcastAccepted"),
        "303": SEE_OTHER,
        **error_responses(
            *NAME_ERRORS,
            *AUTH_ERRORS,
            BadRequest,
            InvalidMessage,
            BadCsrfToken,
            PayloadTooLarge,
            MethodNotAllowed,
            PreconditionFailed,
            *PUBLISH_FAILURES,
            SessionStoreUnavailable,
            html=True,
        ),
    },
    [_ref("parameters", "exchange")],
    {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _ref("schemas", "BroadcastForm")},
        },
    },
    permission="watch:{exchange} broadcast:{exchange}",
    security=BROWSER_SECURITY,
)

DASHBOARD_INDEX = _operation(
    "dashboardIndex",
    "dashboard UI",
    "The login form, or the exchanges this browser follows",
    BROWSER_ONLY + "With API keys on and no key (header or logged-in session), the login form; "
    "otherwise the exchanges followed in this browser's session, with a form to follow another. "
    "Sets the session cookie (`hutch_session`).",
    {
        "200": {"description": "The page.", "content": HTML_PAGE},
        **error_responses(MethodNotAllowed, SessionStoreUnavailable, html=True),
    },
    [
        {
            "name": "next",
            "in": "query",
            "required": False,
            "description": "The exchange whose page to show after logging in. Only an exchange name "
            "(1-127 of `A-Z a-z 0-9 _ . : -`, not `amq.*`) is used; any other value, empty included, is "
            "ignored and the login leads to this index: a stale or mangled link still shows the form.",
            "schema": {"type": "string"},
        }
    ],
)

DASHBOARD_ACT = _operation(
    "dashboardAct",
    "dashboard UI",
    "Log in or out, follow or unfollow an exchange",
    BROWSER_ONLY + "`login` checks the API key's secret, gives the session a new id and keeps the "
    "key's name and a fingerprint of its secret's digest in the session (403 `forbidden` and the login "
    "form again when it is not a key); `logout` deletes the session on the server; `follow` "
    "and `unfollow` change the session's list of exchanges (at most 16; needs a logged-in session "
    "or a key). Every action needs the form's CSRF token.",
    {
        "303": SEE_OTHER,
        **error_responses(
            InvalidName,
            ReservedName,
            BadRequest,
            Unauthorized,
            Forbidden,
            BadCsrfToken,
            PayloadTooLarge,
            MethodNotAllowed,
            SessionStoreUnavailable,
            html=True,
        ),
    },
    body={
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": _ref("schemas", "DashboardForm")}},
    },
)

STATIC = _operation(
    "dashboardAsset",
    "dashboard UI",
    "The dashboard's stylesheet and script",
    BROWSER_ONLY + "Only these two files are served, with an `ETag` (a conditional request gets 304).",
    {
        "200": {
            "description": "The file.",
            "headers": {"ETag": {"schema": {"type": "string"}}},
            "content": {
                "text/css": {"schema": {"type": "string"}},
                "text/javascript": {"schema": {"type": "string"}},
            },
        },
        "304": {"description": "Not modified (`If-None-Match`)."},
        **error_responses(InvalidName, ReservedName, NotFound, MethodNotAllowed),
    },
    [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["dashboard.css", "dashboard.js"]},
        }
    ],
)

HEALTH = _operation(
    "health",
    "operations",
    "Can this gateway process reach the broker?",
    "For load balancers and monitors. Never needs an API key.",
    {
        "200": _json("The broker is reachable.", "HealthOk"),
        "503": _json(
            "The broker is unreachable or has blocked publishing.",
            "HealthUnavailable",
            {"Retry-After": {**RESPONSE_HEADERS["RetryAfter"], "required": True}},
        ),
        **error_responses(MethodNotAllowed),
    },
)

OPENAPI = _operation(
    "openapi",
    "operations",
    "This contract, machine-readable",
    "This OpenAPI document; `servers` names where the gateway is mounted (its SCRIPT_NAME prefix).",
    {
        "200": {
            "description": "The OpenAPI 3.0.3 document.",
            "content": {JSON: {"schema": {"type": "object"}}},
        },
        **error_responses(MethodNotAllowed),
    },
)

INDEX = _operation(
    "index",
    "operations",
    "Where to start: the dashboard for a browser, links for a client",
    "A browser (`Accept` prefers `text/html`) is sent to the dashboard with 303; any other client gets "
    "the gateway's links under its mount point. Never needs an API key.",
    {
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
                    "example": {"links": {"openapi": "/gateway/openapi.json", "health": "/gateway/health"}},
                }
            },
        },
        "303": {
            "description": "A browser: go to the dashboard.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **error_responses(MethodNotAllowed),
    },
)

METRICS = _operation(
    "metrics",
    "operations",
    "Prometheus metrics of the whole gateway",
    "The Prometheus text exposition (OpenMetrics when `Accept` asks for it), summed over every process "
    "of this gateway: requests "
    "by app and status, publish-to-confirm and RPC latency histograms, RPC timeouts and no-responder "
    "answers, unroutable messages, broker connection state and reconnects, open event streams, "
    "idempotent replays.",
    {
        "200": {
            "description": "The metrics.",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        },
        **error_responses(*AUTH_ERRORS, MethodNotAllowed),
    },
    permission="metrics",
)

PATHS = {
    "/broadcast/{exchange}": {"post": BROADCAST},
    "/notify/{exchange}": {"post": NOTIFY},
    "/notify/{exchange}/queues/{consumer}": {"put": REGISTER},
    "/rpc/{exchange}/{routing_key}": {"post": RPC},
    "/events/{exchange}": {"get": EVENTS},
    "/dashboard/{exchange}": {"get": DASHBOARD, "post": DASHBOARD_PUBLISH},
    "/dashboard/{exchange}/ticket": {"get": DASHBOARD_TICKET},
    "/health": {"get": HEALTH},
    "/openapi.json": {"get": OPENAPI},
    "/": {"get": INDEX},
    "/metrics": {"get": METRICS},
    "/dashboard/": {"get": DASHBOARD_INDEX, "post": DASHBOARD_ACT},
    "/static/{name}": {"get": STATIC},
}

DESCRIPTION = """\
Hutch is an HTTP gateway to RabbitMQ. It turns HTTP requests into three AMQP idioms:
**broadcast** (transient fanout, at most once), **notify** (durable fanout, persistent, confirmed,
one durable queue per consumer system) and **request/response** (RPC over a direct exchange with
direct reply-to), and serves a live dashboard of broadcast exchanges.

Paths are relative to where the gateway is mounted (`servers`). HEAD is accepted wherever GET is.
An unknown path, a missing segment or a slash after a name answers 404 `not_found`; a known path with
another method answers 405 `method_not_allowed` with `Allow`. Every API error is JSON
`{"error": code, "detail": text}` (see the `Error` schema for every code).

API keys: with `auth = keys` (production) every operation but `/`, `/health` and `/openapi.json`
needs an API key, sent as `Authorization: Bearer {secret}` or as HTTP Basic with the key's name and
secret. No valid key: 401 `unauthorized` with `WWW-Authenticate`. A key without the operation's
permission (`x-hutch-permission`, e.g. `notify:patient.*` or `rpc:api/*` in the key's list; `metrics`
reads `/metrics`; `*` allows everything): 403 `forbidden`. A browser logs in to the dashboard once
with a key's secret and is then known by its session cookie, which the dashboard's pages and
`/events` accept. A gateway run with `auth = off` (development) needs no key.
"""

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
        "description": DESCRIPTION,
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
    "paths": PATHS,
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


def document(server_url):
    """The OpenAPI document for a gateway mounted at ``server_url`` (its SCRIPT_NAME prefix)."""
    return {**BASE, "servers": [{"url": server_url or "/", "description": "this gateway"}]}
