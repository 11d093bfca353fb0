"""The gateway's one exception hierarchy.

Every failure a client can see is a ``HutchError``.  Each class carries the
HTTP status and the stable ``error`` code of the contract; ``hutch.web.http``
turns any of them into the JSON error response, in one place.  Broker
outcomes (unroutable, nack, no responder, timeout, broker down, precondition
failed) are distinct subclasses so callers can tell them apart, in the way
pika's own ``exceptions.py`` does.
"""


class HutchError(Exception):
    """Root of every error the gateway reports to a client."""

    status = 500
    code = "internal"
    detail = "The gateway failed to handle the request."

    def __init__(self, detail=None, headers=()):
        self.detail = detail or self.detail
        self.headers = list(headers)
        super().__init__(self.detail)


# --- request errors (the client's fault) ------------------------------------


class BadRequest(HutchError):
    status = 400
    code = "bad_request"
    detail = "The request is malformed."


class InvalidName(BadRequest):
    code = "invalid_name"
    detail = "Names are 1-127 characters of A-Z a-z 0-9 _ . : -"


class InvalidHeader(BadRequest):
    code = "invalid_header"
    detail = "A request header has an invalid value."


class InvalidMessage(BadRequest):
    code = "invalid_message"
    detail = "The message does not match its content type."


class InvalidBatch(BadRequest):
    code = "invalid_batch"
    detail = "A line of the batch is not a message; nothing was published."


class Unauthorized(HutchError):
    status = 401
    code = "unauthorized"
    detail = "Credentials are required."


class Forbidden(HutchError):
    status = 403
    code = "forbidden"
    detail = "You may not do this."


class ReservedName(Forbidden):
    code = "reserved_name"
    detail = "Names starting with 'amq.' are reserved by RabbitMQ."


class BadCsrfToken(Forbidden):
    code = "bad_csrf_token"
    detail = "The form's CSRF token is missing or does not match the session."


class NotFound(HutchError):
    status = 404
    code = "not_found"
    detail = "No such route."


class MethodNotAllowed(HutchError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed):
        allow = ", ".join(sorted(allowed))
        super().__init__(f"Allowed methods: {allow}.", headers=[("Allow", allow)])


class TooManyStreams(HutchError):
    """An event server holds ``events_max_streams`` streams, or is stopping; the browser retries."""

    status = 503
    code = "too_many_streams"
    detail = "This gateway process serves as many event streams as it may; retry shortly."

    def __init__(self, detail=None, retry_after=5):
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])


class SessionStoreUnavailable(HutchError):
    """The dashboard's session store (Redis) did not answer; API routes never need it."""

    status = 503
    code = "session_store_unavailable"
    detail = "The session store is unavailable; retry later."

    def __init__(self, detail=None, retry_after=5):
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])


class PayloadTooLarge(HutchError):
    status = 413
    code = "payload_too_large"
    detail = "The request body is larger than max_body_bytes."


# --- answered by the web server before the gateway runs ---------------------
# Apache answers these itself (its read timeouts and hard limits); its
# ErrorDocuments serve the JSON of these classes (apache/errors/).


class RequestTimeout(HutchError):
    status = 408
    code = "request_timeout"
    detail = "The request's headers or body did not arrive in time."


class UriTooLong(HutchError):
    status = 414
    code = "uri_too_long"
    detail = "The request line is longer than the server accepts (8190 bytes)."


# --- broker outcomes --------------------------------------------------------


class BrokerError(HutchError):
    """Something the broker said or did; raised by ``hutch.broker``."""


class BrokerUnavailable(BrokerError):
    """No usable connection, a blocked connection, or a lost confirm.

    The request may be retried; ``Retry-After`` tells when.
    """

    status = 503
    code = "broker_unavailable"
    detail = "The message broker is unavailable; retry later."
    retry_after = 5

    def __init__(self, detail=None, retry_after=None):
        seconds = retry_after or self.retry_after
        super().__init__(detail, headers=[("Retry-After", str(seconds))])


class PublishNacked(BrokerUnavailable):
    code = "nacked"
    detail = "The broker refused to take responsibility for the message."


class Unroutable(BrokerError):
    status = 409
    code = "unroutable"
    detail = "No queue is bound to the exchange; nothing was stored."


class PreconditionFailed(BrokerError):
    status = 409
    code = "precondition_failed"
    detail = "The exchange or queue exists with another type or durability."


class NoResponder(BrokerError):
    status = 503
    code = "no_responder"
    detail = "No responder is bound for this exchange and routing key."


class RpcTimeout(BrokerError):
    status = 504
    code = "timeout"
    detail = "The responder did not reply in time."


# What a publish through ``hutch.amqp`` may answer besides success.
PUBLISH_FAILURES = (PreconditionFailed, BrokerUnavailable, PublishNacked)


# --- idempotent retries ----------------------------------------------------


class IdempotencyError(HutchError):
    """An ``Idempotency-Key`` could not be honoured; raised by ``hutch.web.idempotency``."""


class IdempotencyKeyReused(IdempotencyError):
    status = 422
    code = "idempotency_key_reused"
    detail = "This Idempotency-Key was already used for a request with another body or Content-Type."


class IdempotencyInFlight(IdempotencyError):
    """A duplicate waited as long as it may and the first attempt is still publishing."""

    status = 409
    code = "idempotency_in_flight"
    detail = "A request with this Idempotency-Key is still being published; retry shortly."

    def __init__(self, detail=None, retry_after=1):
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])


class IdempotencyUnavailable(IdempotencyError):
    """The idempotency store (Redis) cannot be reached: refuse rather than risk a duplicate."""

    status = 503
    code = "idempotency_unavailable"
    detail = "The idempotency store is unavailable; retry later (requests without Idempotency-Key work)."

    def __init__(self, detail=None, retry_after=5):
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])


IDEMPOTENCY_ERRORS = (IdempotencyKeyReused, IdempotencyInFlight, IdempotencyUnavailable)

# What a batch (``hutch.web.bulk``) answers for the whole request besides a publish's failures; a line's
# own failures (409, 422, 503) are in the 200's results.
BATCH_ERRORS = (InvalidBatch, IdempotencyUnavailable)


# --- push delivery and HTTP responders (hutch.delivery) ---------------------


class InvalidSubscription(BadRequest):
    code = "invalid_subscription"
    detail = "The subscription's body is not valid."


class TargetRefused(BadRequest):
    """The URL is outside ``push_allow``, or its host is a loopback, link-local or private address."""

    code = "target_refused"
    detail = "The gateway may not call this URL (push_allow)."


class NoSubscription(NotFound):
    code = "no_subscription"
    detail = "No push subscription or responder is registered here."


class SubscriptionStoreUnavailable(HutchError):
    """``push_store`` is unset, or its Redis does not answer."""

    status = 503
    code = "subscription_store_unavailable"
    detail = "The subscription store is unavailable; retry later."

    def __init__(self, detail=None, retry_after=5):
        super().__init__(detail, headers=[("Retry-After", str(retry_after))])
