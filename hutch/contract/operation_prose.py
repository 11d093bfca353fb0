"""Each operation's prose, as data: its tag, summary and description, by operation id.

``hutch.contract.openapi`` puts it with what the code says of the operation;
``$name`` stands for a fact the code holds (``hutch.contract.prose.FACTS``).
"""

# operation id -> (tag, summary, description)
OPERATIONS = {
    "broadcast": (
        "broadcast",
        "Publish to a transient fanout exchange",
        (
            "The Broadcast idiom: publish the body to the fanout exchange `{exchange}`, "
            "declared if missing as the seed does (durable=False, auto_delete=True). At most "
            "once: nobody listening is fine, `routed` says whether at least one queue got it. "
            "Answers once the broker has taken the message.$amqp_headers"
        ),
    ),
    "notify": (
        "notify",
        "Publish a persistent message every consumer queue keeps",
        (
            "The Notify idiom: a persistent (delivery_mode=2), mandatory publish to the fanout "
            "exchange `{exchange}`, declared if missing as the seed does (durable=True, "
            "auto_delete=False). 202 only after the broker's publisher confirm; a message no "
            "queue is bound for is an error (409 `unroutable`, nothing was stored), never a "
            "silent 202.$amqp_headers"
        ),
    ),
    "registerConsumer": (
        "notify",
        "Register a consumer system's durable queue",
        (
            "Declare the durable queue `{exchange}.{consumer}` (durable=True, exclusive=False, "
            "auto_delete=False, `x-queue-type` from the gateway's `notify_queue_type`: "
            "`quorum`, replicated over a cluster's nodes, or `classic`) bound to the notify "
            "exchange, declaring the exchange as notify does. Idempotent. From then on the "
            "queue keeps every notify message for the consumer, even while it is not running. A"
            " queue that exists with another type is kept as it is, bound, and answered 200 "
            "with its `queue_type`; one that exists with other arguments or durability is a "
            "409. The request body, if any, is ignored."
        ),
    ),
    "call": (
        "rpc",
        "Call a responder over AMQP and return its reply",
        (
            "The Request/Response idiom: publish the body to the direct exchange `{exchange}` "
            "with `{routing_key}`, `reply_to` and a `correlation_id` of the gateway's, expiring"
            " with the timeout, and block until the reply. Responders declare the exchange; the"
            " gateway never declares or alters it. Replies written the seed's way (without "
            "copying `correlation_id`) work too.\n"
            "\n"
            "503 `no_responder` and 504 `timeout` are expected answers of a call, listed in "
            "`x-hutch-expected-errors`: they say what the responder side did (nothing is bound,"
            " or no reply came in time), not that the gateway failed; clients and tools should "
            "treat them as answers.$amqp_headers"
        ),
    ),
    "events": (
        "dashboard",
        "Stream a broadcast exchange's messages as Server-Sent Events",
        (
            "The messages published to the broadcast exchange `{exchange}` (declared as for "
            "broadcast) as\n"
            "Server-Sent Events, served by the gateway's asyncio event servers on the same port"
            " and mount\n"
            "point. Each event-server process consumes a watched exchange once and fans it out."
            "\n"
            "\n"
            "Event ids are positions. On an exchange matching `events_history` they are the "
            "offsets of the\n"
            'exchange\'s RabbitMQ stream (`"1234"`), the same on every process and host: a '
            "stream opened\n"
            "without `Last-Event-ID` first replays up to `events_history_count` retained "
            "messages, oldest\n"
            "first; with `Last-Event-ID: n` it sends exactly the messages after `n`, whichever "
            "process serves\n"
            "it, and an `EventGap` (`retention`) only when the stream's retention dropped some "
            "of them. Such\n"
            "an exchange's stream queue is bound as soon as the exchange is declared, by a "
            "broadcast or by the\n"
            "first viewer: a broadcast to it is always `routed`, and the auto-delete exchange "
            "is never deleted.\n"
            "Other exchanges are live-only: ids are `~{feed}.{seq}` of one process, and a "
            "stream replays\n"
            "nothing.\n"
            "\n"
            "A stream sends, in order: `retry: 2000`; a `gap` event when needed; the replayed "
            "messages; a\n"
            "`ready` event (`EventReady`); then each new message as one unnamed event "
            "(`message` to\n"
            "EventSource) whose `data` is `EventMessage` JSON. A `: heartbeat` comment follows "
            "every\n"
            "`events_heartbeat` seconds of silence. A client that falls `events_max_pending` "
            "bytes behind is\n"
            "cut off (it reconnects with its last id and loses nothing). If the broker "
            "connection drops, the\n"
            "stream stays open and continues where it was once the event server has "
            "reconnected.\n"
            "\n"
            "The stream ends with a `closing` event (`EventClosing`: after about "
            "`events_max_lifetime` seconds,\n"
            "or at shutdown; reconnect with the last id). A browser, which cannot send "
            "`Authorization` from\n"
            "EventSource, is known by its dashboard session's cookie (same origin), or passes the "
            "`ticket` the dashboard's `GET /dashboard/{exchange}/ticket` gives it. Precedence: "
            "`Authorization`, then `ticket`, then the session."
        ),
    ),
    "dashboard": (
        "dashboard",
        "An HTML page showing the exchange's messages live",
        (
            "The browser dashboard: the broadcast exchange's messages, newest first, fed by "
            "`/events/{exchange}`, with a form to broadcast and a button to follow the "
            "exchange. A browser that has not logged in is sent to the login form (303 to "
            "`/dashboard/?next={exchange}`)."
        ),
    ),
    "dashboardTicket": (
        "dashboard UI",
        "A short-lived ticket that opens the exchange's event stream",
        (
            "${browser_only}The page's EventSource cannot send `Authorization`. The event servers "
            "accept the session cookie too, but the page gets this ticket (signed with the "
            "session secret, naming the logged-in key and the exchange, valid "
            "`events_ticket_ttl` seconds) before each connection and passes it as "
            "`/events/{exchange}?ticket=...`."
        ),
    ),
    "dashboardBroadcast": (
        "dashboard UI",
        "Broadcast a message from the dashboard's form",
        (
            "${browser_only}Publishes the form's `body` as `/broadcast/{exchange}` does, with the"
            " form's `content_type` (JSON bodies must parse) and `app_id` `hutch-dashboard`. A "
            "browser is sent back to the page (303); a script that prefers `application/json` "
            "gets the 202 answer of broadcast."
        ),
    ),
    "dashboardIndex": (
        "dashboard UI",
        "The login form, or the exchanges this browser follows",
        (
            "${browser_only}With API keys on and no key (header or logged-in session), the login "
            "form; otherwise the exchanges followed in this browser's session, with a form to "
            "follow another. Sets the session cookie (`$session_cookie`)."
        ),
    ),
    "dashboardAct": (
        "dashboard UI",
        "Log in or out, follow or unfollow an exchange",
        (
            "${browser_only}`login` checks the API key's secret, gives the session a new id and "
            "keeps the key's name and a fingerprint of its secret's digest in the session (403 "
            "`forbidden` and the login form again when it is not a key); `logout` deletes the "
            "session on the server; `follow` and `unfollow` change the session's list of "
            "exchanges (at most $max_followed; needs a logged-in session or a key). Every action needs the"
            " form's CSRF token."
        ),
    ),
    "dashboardAsset": (
        "dashboard UI",
        "The dashboard's stylesheet and script",
        (
            "${browser_only}Only these files are served ($assets), with an `ETag` "
            "(a conditional request gets 304)."
        ),
    ),
    "health": (
        "operations",
        "Can this gateway process reach the broker?",
        "For load balancers and monitors. Never needs an API key.",
    ),
    "openapi": (
        "operations",
        "This contract, machine-readable",
        ("This OpenAPI document; `servers` names where the gateway is mounted (its SCRIPT_NAME prefix)."),
    ),
    "reference": (
        "operations",
        "This contract, browsable",
        (
            "Swagger UI over this gateway's `/openapi.json`: every operation with its parameters, "
            'bodies and answers, and "Try it out". Its files are the gateway\'s own '
            "(`/reference/{name}`); nothing is loaded from another site. Never needs an API key."
        ),
    ),
    "referenceAsset": (
        "operations",
        "The browsable reference's stylesheet and scripts",
        "Only these files are served: Swagger UI's and the script that starts it, with an `ETag`.",
    ),
    "index": (
        "operations",
        "Where to start: the dashboard for a browser, links for a client",
        (
            "A browser (`Accept` prefers `text/html`) is sent to the dashboard with 303; any "
            "other client gets the gateway's links under its mount point. Never needs an API "
            "key."
        ),
    ),
    "metrics": (
        "operations",
        "Prometheus metrics of the whole gateway",
        (
            "The Prometheus text exposition (OpenMetrics when `Accept` asks for it), summed "
            "over every process of this gateway: requests by app and status, publish-to-confirm"
            " and RPC latency histograms, RPC timeouts and no-responder answers, unroutable "
            "messages, broker connection state and reconnects, open event streams, idempotent "
            "replays."
        ),
    ),
}

# --- bulk publishing (POST /broadcast/{exchange}/batch, POST /notify/{exchange}/batch) ---------------

BATCH_PROSE = (
    "The body is NDJSON (`application/x-ndjson`): one JSON object a line, each one message: `body` "
    "(text, published as UTF-8) or `body_base64`, and optionally `content_type` (default "
    "`application/octet-stream`), `headers` (an object of printable ASCII strings; at most "
    "$max_headers), `idempotency_key` (also the `message_id`) and `correlation_id` (`BatchLine`). "
    "Blank lines carry no message. The whole batch is checked before anything is published: a bad line is "
    "400 `invalid_batch` naming its line number, more than `max_batch_messages` (default 1000) "
    "messages or `max_batch_bytes` (default 16 MiB) is 413, and nothing was published. Then every "
    "message is published at once and the answer waits for every confirm: 200 with one result a "
    "message, in order. A result is 202 only after the broker's confirm; 503 `broker_unavailable` "
    "(or `nacked`) when the broker did not confirm it (retry it, with its `idempotency_key`). Each "
    "line's `idempotency_key` works as one message's `Idempotency-Key` (the same scope: a line and "
    "a single request retry each other): a repeat is answered with the first answer and "
    "`replayed: true`, 422 `idempotency_key_reused` or 409 `idempotency_in_flight` as a line's "
    "result; a key repeated in one batch is published once, by its first line. When nothing "
    "could be sent (broker unreachable or blocked, the exchange of another "
    "type, the idempotency store down) the whole request fails as one message would."
)
OPERATIONS["broadcastBatch"] = (
    "broadcast",
    "Publish many messages to a transient fanout exchange",
    "The Broadcast idiom for many messages in one request, to `{exchange}` declared as for one. "
    "Each result says `routed` as one message's answer does. " + BATCH_PROSE,
)
OPERATIONS["notifyBatch"] = (
    "notify",
    "Publish many persistent messages every consumer queue keeps",
    "The Notify idiom for many messages in one request, to `{exchange}` declared as for one: "
    "persistent, mandatory; a message no queue is bound for is the line's 409 `unroutable` "
    "(nothing stored). " + BATCH_PROSE,
)

# --- push delivery (hutch.delivery): the prose of its operations ---------------
_PUSH_NOTE = (
    " Delivered by the delivery processes (`hutch delivery`, started by `hutch serve`); the "
    "subscriptions live in the `push_store` Redis. Guide: docs/push-delivery.md."
)
OPERATIONS.update(
    {
        "putPush": (
            "notify",
            "Deliver a consumer's queue to an HTTP URL",
            (
                "Register (as `PUT .../queues/{consumer}` does, if missing) the consumer's queue and "
                "deliver it to `url` instead of an AMQP consumer: each message is one signed `POST` "
                "(Standard Webhooks), retried after each delay of `retry_schedule` (seconds) and then kept "
                "as a dead letter. `url` must start with a `push_allow` prefix and may not name a "
                "loopback, link-local or private address unless a prefix names that host. 201 with the "
                "`secret` (shown once) on creation; 200 on an update, which keeps the secret." + _PUSH_NOTE
            ),
        ),
        "getPush": (
            "notify",
            "A push subscription and its state",
            "The configuration (never the secret) and the counts summed over every delivery process.",
        ),
        "deletePush": (
            "notify",
            "Stop pushing a consumer's queue",
            "The queue, its messages and its dead letters stay.",
        ),
        "rotatePushSecret": (
            "notify",
            "A new signing secret",
            "Returns the new secret once; for 24 hours deliveries carry a signature by each secret.",
        ),
        "listDeadLetters": (
            "notify",
            "List a subscription's dead letters",
            "Oldest first; listing neither removes nor reorders them. `limit`: 100 unless given, up to 1000.",
        ),
        "redeliverDeadLetters": (
            "notify",
            "Deliver every dead letter again",
            "Each moves back to the consumer's queue as a first attempt, in order.",
        ),
        "dropDeadLetters": ("notify", "Drop every dead letter", "They are deleted."),
        "pushDashboard": (
            "dashboard UI",
            "Push subscriptions and HTTP responders",
            "${browser_only}Those the viewer's key may manage: state, last failure, dead letters.",
        ),
        "pushDashboardAct": (
            "dashboard UI",
            "Redeliver or drop a subscription's dead letters",
            "${browser_only}Needs `register` on the exchange and the session's CSRF token; 303 to the page.",
        ),
        "putResponder": (
            "rpc",
            "Answer calls from an HTTP service",
            (
                "Each request to `{exchange}` with `{routing_key}` (from `POST /rpc/...` or any AMQP caller) "
                "becomes one signed `POST` to `url` (Standard Webhooks headers, `X-Correlation-Id`, "
                "`X-Timeout`: milliseconds before the caller gives up); the HTTP answer is the reply "
                "(status as `http_status`, body, `Content-Type`). A responder that fails is answered "
                "502, one slower than the time left 504; a request is never sent twice. 201 with the "
                "`secret` (once) on creation, 200 on an update." + _PUSH_NOTE
            ),
        ),
        "getResponder": (
            "rpc",
            "An HTTP responder and its state",
            "The configuration (never the secret) and its counts.",
        ),
        "deleteResponder": (
            "rpc",
            "Stop answering calls from an HTTP service",
            "Calls answer 503 no_responder once no delivery process consumes its queue.",
        ),
    }
)
