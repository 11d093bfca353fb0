"""POST /broadcast/{exchange}: fire-and-forget to a transient fanout exchange."""

from hutch.errors import (
    BATCH_ERRORS,
    IDEMPOTENCY_ERRORS,
    PUBLISH_FAILURES,
    BrokerUnavailable,
    InvalidHeader,
    PreconditionFailed,
)
from hutch.messages import message_from_environ
from hutch.web.bulk import publish_batch
from hutch.web.http import BODY_ERRORS, Route, Routes, json_response, operation, read_body


@operation("broadcast", raises=(*BODY_ERRORS, InvalidHeader, *PUBLISH_FAILURES, *IDEMPOTENCY_ERRORS))
def publish(request, gateway, exchange):
    body = read_body(request.environ, gateway.settings.max_body_bytes)
    message = message_from_environ(request.environ, body)

    def send():
        routed = gateway.broker.broadcast(exchange, message)
        return json_response(202, {"message_id": message.message_id, "exchange": exchange, "routed": routed})

    return gateway.idempotency.once(request.environ, "broadcast", exchange, message, send)


@operation("broadcastBatch", raises=(*BODY_ERRORS, *BATCH_ERRORS, PreconditionFailed, BrokerUnavailable))
def publish_many(request, gateway, exchange):
    return publish_batch(request, gateway, "broadcast", exchange)


application = Routes(
    Route("{exchange}", permission="broadcast", POST=publish),
    Route("{exchange}/batch", permission="broadcast", POST=publish_many),
)
