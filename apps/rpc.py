"""POST /rpc/{exchange}/{routing_key}: an HTTP call answered over AMQP."""

from webob import Response

from hutch.delivery.api import RESPONDER_ROUTES
from hutch.errors import BrokerUnavailable, InvalidHeader, NoResponder, PreconditionFailed, RpcTimeout
from hutch.messages import message_from_environ, reply_status, response_headers
from hutch.web.http import BODY_ERRORS, Route, Routes, operation, read_body

NO_CONTENT = (204, 304)


def requested_timeout(request, settings):
    """X-Timeout in seconds (decimal, > 0), capped at rpc_max_timeout."""
    text = request.headers.get("X-Timeout")
    if text is None:
        return settings.rpc_timeout
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidHeader("X-Timeout must be a number of seconds.") from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidHeader("X-Timeout must be greater than 0.")
    return min(seconds, settings.rpc_max_timeout)


@operation(
    "call",
    raises=(*BODY_ERRORS, InvalidHeader, PreconditionFailed, BrokerUnavailable, NoResponder, RpcTimeout),
)
def call(request, gateway, exchange, routing_key):
    settings = gateway.settings
    timeout = requested_timeout(request, settings)
    body = read_body(request.environ, settings.max_body_bytes)
    message = message_from_environ(request.environ, body)
    reply = gateway.broker.call(exchange, routing_key, message, timeout)
    status = reply_status(reply.properties)
    headers = response_headers(reply.properties)
    response = Response(status=status)
    if status in NO_CONTENT:  # RFC 9110: no content, so no Content-Type either
        response.headerlist = [header for header in headers if header[0] != "Content-Type"]
    else:
        response.headerlist = headers
        response.body = reply.body  # also sets Content-Length
    return response


application = Routes(
    Route("{exchange}/{routing_key}", permission="rpc", POST=call),
    *RESPONDER_ROUTES,  # .../responder: HTTP responders, hutch.delivery.api
)
