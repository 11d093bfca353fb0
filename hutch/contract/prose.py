"""The document's own prose, as data, and the facts of the code it names.

The overview (``info.description``), the tags, what each error code means and
the AMQP header family's paragraph; each operation's prose is
``hutch.contract.operation_prose``.  ``$name`` stands for a fact the code holds
(``FACTS``), so the prose cannot drift from the limit the gateway enforces:
``fill`` puts the facts in.
"""

import string

from hutch.messages import MAX_HEADER_VALUE, MAX_HEADERS
from hutch.names import NAME_MAX
from hutch.settings import SESSION_DEFAULTS
from hutch.web.pages import ASSETS, MAX_FOLLOWED

DESCRIPTION = (
    "Hutch is an HTTP gateway to RabbitMQ. It turns HTTP requests into three AMQP idioms:\n"
    "**broadcast** (transient fanout, at most once), **notify** (durable fanout, persistent, "
    "confirmed,\n"
    "one durable queue per consumer system) and **request/response** (RPC over a direct "
    "exchange with\n"
    "direct reply-to), and serves a live dashboard of broadcast exchanges.\n"
    "\n"
    "Paths are relative to where the gateway is mounted (`servers`). HEAD is accepted wherever "
    "GET is.\n"
    "An unknown path, a missing segment or a slash after a name answers 404 `not_found`; a "
    "known path with\n"
    "another method answers 405 `method_not_allowed` with `Allow`. Every API error is JSON\n"
    '`{"error": code, "detail": text}` (see the `Error` schema for every code).\n'
    "\n"
    "API keys: with `auth = keys` (production) every operation but `/`, `/health` and "
    "`/openapi.json`\n"
    "needs an API key, sent as `Authorization: Bearer {secret}` or as HTTP Basic with the key's"
    " name and\n"
    "secret. No valid key: 401 `unauthorized` with `WWW-Authenticate`. A key without the "
    "operation's\n"
    "permission (`x-hutch-permission`, e.g. `notify:patient.*` or `rpc:api/*` in the key's "
    "list; `metrics`\n"
    "reads `/metrics`; `*` allows everything): 403 `forbidden`. A browser logs in to the "
    "dashboard once\n"
    "with a key's secret and is then known by its session cookie, which the dashboard's pages "
    "and\n"
    "`/events` accept. A gateway run with `auth = off` (development) needs no key.\n"
)

TAGS = [
    {"name": "broadcast", "description": "Fire-and-forget to whoever listens now."},
    {"name": "notify", "description": "Nothing lost: durable queues, one per consumer system."},
    {"name": "rpc", "description": "An HTTP call answered by an AMQP responder."},
    {"name": "dashboard", "description": "Live view of broadcast exchanges."},
    {"name": "dashboard UI", "description": "The dashboard's pages, forms and assets for browsers."},
    {"name": "operations", "description": "Health and this document."},
]

# By error code; an error class's own ``detail`` stands for a code not here.
CODE_PROSE = {
    "internal": "An unexpected failure inside the gateway; it is logged, never shown.",
    "bad_request": (
        "The request is malformed: a bad Content-Length, or (answered by the web server) a "
        "malformed header, a header field over 8190 bytes or more than 100 header fields."
    ),
    "invalid_name": "An exchange, routing key or consumer name is not 1-$name_max of `A-Z a-z 0-9 _ . : -`.",
    "invalid_header": "A header value is not printable ASCII, too long, or (X-Timeout) not a number > 0.",
    "unauthorized": "No valid API key: the Authorization header is missing, malformed or unknown.",
    "forbidden": "The API key lacks the permission for this idiom and name, or the broker refused access.",
    "reserved_name": "The name starts with `amq.`, reserved by RabbitMQ.",
    "bad_csrf_token": "A dashboard form's CSRF token is missing or does not match the session.",
    "not_found": "No such route (unknown path, missing segment, or a slash after a name).",
    "method_not_allowed": "The route exists but not for this method; `Allow` lists the methods.",
    "payload_too_large": (
        "The body is larger than `max_body_bytes` (answered by the gateway), or than the web "
        "server accepts at all (`max_body_bytes` + 64 KiB under `hutch serve`; answered by the "
        "server). A batch: over `max_batch_bytes` or `max_batch_messages` (nothing was published)."
    ),
    "request_timeout": (
        "Answered by the web server: the headers or the body did not arrive in time (slow-client protection)."
    ),
    "uri_too_long": "Answered by the web server: the request line is over 8190 bytes.",
    "broker_unavailable": (
        "The broker cannot be reached, blocked publishing, or did not answer in time, or the "
        "connection to its node was lost with the request in flight (not confirmed: retry)."
    ),
    "nacked": "The broker refused to take responsibility for the message (publisher nack).",
    "unroutable": "No queue is bound to the notify exchange; nothing was stored.",
    "precondition_failed": "The exchange or queue exists with another type or durability.",
    "no_responder": (
        "No responder queue is bound for the exchange and routing key, or the exchange is "
        "missing. An expected answer of the call (`x-hutch-expected-errors`), not a failure of "
        "the gateway."
    ),
    "timeout": (
        "The responder did not reply within the timeout. An expected answer of the call "
        "(`x-hutch-expected-errors`), not a failure of the gateway."
    ),
    "too_many_streams": "This gateway process holds as many event streams as it may (or is stopping).",
    "invalid_message": "A dashboard form's message does not match its content type (e.g. invalid JSON).",
    "idempotency_key_reused": "The `Idempotency-Key` was used before with another body or Content-Type.",
    "idempotency_in_flight": (
        "A request with this `Idempotency-Key` is still publishing after `publish_timeout`; retry."
    ),
    "idempotency_unavailable": (
        "The idempotency store (Redis) is unreachable: a keyed request is refused rather than "
        "risk a duplicate. Requests without `Idempotency-Key` still work."
    ),
    "session_store_unavailable": "The dashboard's session store (Redis) is unreachable; API routes work.",
    "invalid_batch": (
        "A line of a batch is not a message (its number is in `detail`): not a JSON object, an unknown "
        "field, not exactly one of `body` and `body_base64`, or a bad property. Nothing was published."
    ),
}

AMQP_HEADERS_PROSE = (
    "\n"
    "\n"
    "AMQP headers: every request header whose name starts with `X-Amqp-Header-` becomes an AMQP"
    " message header named by the rest of the header name, lower-cased (`X-Amqp-Header-Source: "
    'lab` sets `headers["source"] = "lab"`). Values are printable ASCII of at most $max_header_value '
    "characters; at most $max_headers such headers (else 400 `invalid_header`). Described by `x-hutch-"
    "header-family`."
)
BROWSER_ONLY = "The dashboard's browser interface, outside the API contract: it may change. "

# The facts the prose names as ``$name``.
FACTS = {
    "name_max": NAME_MAX,
    "max_headers": MAX_HEADERS,
    "max_header_value": MAX_HEADER_VALUE,
    "max_followed": MAX_FOLLOWED,
    "session_cookie": SESSION_DEFAULTS["session.key"],
    "assets": ", ".join(f"`{name}`" for name in ASSETS),
    "browser_only": BROWSER_ONLY,
}
FACTS["amqp_headers"] = string.Template(AMQP_HEADERS_PROSE).substitute(FACTS)


def fill(template):
    """The prose ``template`` with the facts in place of its ``$name`` placeholders."""
    return string.Template(template).substitute(FACTS)


CODE_MEANINGS = {code: fill(meaning) for code, meaning in CODE_PROSE.items()}
