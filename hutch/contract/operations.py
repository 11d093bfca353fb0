"""What the route table does not say of each operation: its answers, parameters and body.

By operation id (``hutch.web.http.operation``): the answers other than errors,
the parameters other than the path's names, the request body and vendor
extensions.  ``hutch.contract.openapi`` adds the path, the permission and the
errors from the route table, and the prose from ``hutch.contract.operation_prose``.
"""

from hutch.contract.parameters import (
    AMQP_HEADER_FAMILY,
    BATCH_BODY,
    MESSAGE_BODY,
    MESSAGE_BODY_CONTENT,
    MESSAGE_PARAMETERS,
)
from hutch.contract.reference import ASSETS as REFERENCE_ASSETS
from hutch.contract.responses import REPLAYED, RESPONSE_HEADERS
from hutch.contract.schemas import JSON, ref
from hutch.errors import NoResponder, RpcTimeout, TargetRefused
from hutch.messages import DEFAULT_CONTENT_TYPE, HTTP_CODINGS
from hutch.names import NAME_MAX
from hutch.web.pages import ASSETS


def _asset(names, media_types):
    """A static file served by name, with its ETag."""
    return {
        "responses": {
            "200": {
                "description": "The file.",
                "headers": {"ETag": {"schema": {"type": "string"}}},
                "content": {media_type: {"schema": {"type": "string"}} for media_type in media_types},
            },
            "304": {"description": "Not modified (`If-None-Match`)."},
        },
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": list(names)},
            }
        ],
    }


def _json(description, schema_name, headers=None):
    response = {"description": description, "content": {JSON: {"schema": ref("schemas", schema_name)}}}
    if headers:
        response["headers"] = headers
    return response


HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
SEE_OTHER = {
    "description": "Done; the browser goes to `Location`.",
    "headers": {"Location": {"description": "The page to show next.", "schema": {"type": "string"}}},
}
BINARY = MESSAGE_BODY_CONTENT

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
        "parameters": [ref("parameters", "XTimeout"), *MESSAGE_PARAMETERS],
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
            ref("parameters", "LastEventId"),
            ref("parameters", "last_event_id"),
            ref("parameters", "ticket"),
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
            "content": {"application/x-www-form-urlencoded": {"schema": ref("schemas", "BroadcastForm")}},
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
            "content": {"application/x-www-form-urlencoded": {"schema": ref("schemas", "DashboardForm")}},
        },
    },
    "dashboardAsset": _asset(ASSETS, ASSETS.values()),
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
    "referenceAsset": _asset(REFERENCE_ASSETS, (kind for kind, _ in REFERENCE_ASSETS.values())),
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
    # --- push delivery (hutch.delivery)
    "putPush": {
        "x-hutch-policy-refusals": [TargetRefused.code],
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("schemas", "PushRequest")}}},
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
            "content": {JSON: {"schema": ref("schemas", "ResponderRequest")}},
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

# --- bulk publishing: the batch operations' body and answer
for _batch_operation in ("broadcastBatch", "notifyBatch"):
    OPERATIONS[_batch_operation] = {
        "responses": {"200": _json("Every line's outcome, in order.", "BatchResults")},
        "requestBody": BATCH_BODY,
    }
