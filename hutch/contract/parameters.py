"""What a request carries besides its path: the parameters, the AMQP header family and the bodies.

The path's names, the mapped headers (``Content-Encoding``, ``Idempotency-Key``,
``X-Correlation-Id``, ``X-Timeout``, ``Last-Event-ID``), the event stream's query,
a message's body and a batch's; limits from the modules that enforce them.
"""

from hutch.contract.schemas import NAME_PATTERN, PRINTABLE_ASCII, ref
from hutch.events.resume import MAX_ID_LENGTH
from hutch.messages import DEFAULT_CONTENT_TYPE, MAX_HEADER_VALUE, MAX_HEADERS, SHORTSTR_MAX
from hutch.names import NAME_MAX
from hutch.settings import Settings


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
    ref("parameters", name) for name in ("ContentEncoding", "IdempotencyKey", "CorrelationId")
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
                "items": ref("schemas", "BatchLine"),
            }
        }
    },
}
