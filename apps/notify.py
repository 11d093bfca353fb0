"""Notify: persistent publishes confirmed by the broker, and consumer queues.

POST /notify/{exchange}                    -> 202 once confirmed, 409 if unroutable
PUT  /notify/{exchange}/queues/{consumer}  -> 201 created, 200 existed (whatever its type)
POST /notify/{exchange}/batch              -> 200, one result a line (``hutch.web.bulk``)
.../queues/{consumer}/push, .../dead-letters -> push delivery (``hutch.delivery.api``)
"""

from hutch.delivery.api import PUSH_ROUTES
from hutch.errors import (
    BATCH_ERRORS,
    IDEMPOTENCY_ERRORS,
    PUBLISH_FAILURES,
    BrokerUnavailable,
    InvalidHeader,
    PreconditionFailed,
    Unroutable,
)
from hutch.messages import message_from_environ
from hutch.web.bulk import publish_batch
from hutch.web.http import BODY_ERRORS, Route, Routes, json_response, operation, read_body


@operation("notify", raises=(*BODY_ERRORS, InvalidHeader, Unroutable, *PUBLISH_FAILURES, *IDEMPOTENCY_ERRORS))
def publish(request, gateway, exchange):
    body = read_body(request.environ, gateway.settings.max_body_bytes)
    message = message_from_environ(request.environ, body, persistent=True)

    def send():
        gateway.broker.notify(exchange, message)
        return json_response(202, {"message_id": message.message_id, "exchange": exchange})

    return gateway.idempotency.once(request.environ, "notify", exchange, message, send)


@operation("registerConsumer", raises=(PreconditionFailed, BrokerUnavailable))
def register(request, gateway, exchange, consumer):
    queue = f"{exchange}.{consumer}"
    created, queue_type = gateway.broker.ensure_consumer_queue(
        exchange, queue, gateway.settings.notify_queue_type
    )
    body = {"exchange": exchange, "queue": queue, "created": created, "queue_type": queue_type}
    return json_response(201 if created else 200, body)


@operation("notifyBatch", raises=(*BODY_ERRORS, *BATCH_ERRORS, PreconditionFailed, BrokerUnavailable))
def publish_many(request, gateway, exchange):
    return publish_batch(request, gateway, "notify", exchange)


application = Routes(
    Route("{exchange}", permission="notify", POST=publish),
    Route("{exchange}/queues/{consumer}", permission="register", PUT=register),
    Route("{exchange}/batch", permission="notify", POST=publish_many),
    *PUSH_ROUTES,  # .../push and .../dead-letters: hutch.delivery.api
)
