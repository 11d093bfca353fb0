"""The document's components' schemas: the JSON of the gateway's answers, errors, forms and events.

The Error schema lists every code ``hutch.errors`` defines (with its meaning
from ``hutch.contract.prose``); patterns and limits come from the modules that
enforce them.  ``ref`` names a component for the other parts of the document.
"""

from hutch import errors as hutch_errors
from hutch.contract.prose import CODE_MEANINGS
from hutch.delivery.store import MAX_DELAY
from hutch.errors import HutchError
from hutch.events.sse import PREVIEW_BYTES
from hutch.messages import DEFAULT_CONTENT_TYPE, MAX_HEADER_VALUE, MAX_HEADERS, MEDIA_TYPE, SHORTSTR_MAX
from hutch.names import NAME

JSON = "application/json"
NAME_PATTERN = f"^{NAME.pattern.replace(chr(92), '')}$"  # ECMA-262 needs no escape for a final -
PRINTABLE_ASCII = "^[\\x20-\\x7e]*$"  # what hutch.messages accepts in a mapped header
MEDIA_TYPE_PATTERN = f"^{MEDIA_TYPE.pattern}$"  # what hutch.messages checks a content type with


def ref(kind, name):
    """A reference to the component ``name`` of ``kind`` (``schemas``, ``parameters``...)."""
    return {"$ref": f"#/components/{kind}/{name}"}


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

FORM_FIELDS_PROSE = "The form's fields; any other field is refused (400 `bad_request`)."

# --- push delivery (hutch.delivery): its subscriptions and responders -----------------------
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

# --- bulk publishing: a batch's line --------------------------------------------------------
BATCH_SHORTSTR = {
    "type": "string",
    "nullable": True,
    "minLength": 1,
    "maxLength": SHORTSTR_MAX,
    "pattern": PRINTABLE_ASCII,
}

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
    # --- push delivery
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
    # --- bulk publishing
    "BatchResults": {
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
    },
    "BatchLine": {
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
            "idempotency_key": {
                **BATCH_SHORTSTR,
                "description": "As `Idempotency-Key`; also the `message_id`.",
            },
            "correlation_id": BATCH_SHORTSTR,
        },
    },
}
