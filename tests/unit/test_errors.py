"""Every HutchError becomes the contract's JSON error in ``error_response``."""

import pytest
import webtest

from hutch import errors
from hutch.web import error_response

EXPECTED = [
    (errors.HutchError, 500, "internal"),
    (errors.BadRequest, 400, "bad_request"),
    (errors.InvalidName, 400, "invalid_name"),
    (errors.InvalidMessage, 400, "invalid_message"),
    (errors.TooManyStreams, 503, "too_many_streams"),
    (errors.SessionStoreUnavailable, 503, "session_store_unavailable"),
    (errors.InvalidHeader, 400, "invalid_header"),
    (errors.Unauthorized, 401, "unauthorized"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.ReservedName, 403, "reserved_name"),
    (errors.BadCsrfToken, 403, "bad_csrf_token"),
    (errors.NotFound, 404, "not_found"),
    (errors.PayloadTooLarge, 413, "payload_too_large"),
    (errors.RequestTimeout, 408, "request_timeout"),
    (errors.UriTooLong, 414, "uri_too_long"),
    (errors.BrokerError, 500, "internal"),
    (errors.BrokerUnavailable, 503, "broker_unavailable"),
    (errors.PublishNacked, 503, "nacked"),
    (errors.Unroutable, 409, "unroutable"),
    (errors.PreconditionFailed, 409, "precondition_failed"),
    (errors.NoResponder, 503, "no_responder"),
    (errors.RpcTimeout, 504, "timeout"),
    (errors.IdempotencyError, 500, "internal"),
    (errors.IdempotencyKeyReused, 422, "idempotency_key_reused"),
    (errors.IdempotencyInFlight, 409, "idempotency_in_flight"),
    (errors.IdempotencyUnavailable, 503, "idempotency_unavailable"),
]


def served(error):
    """Serve the error response through WebTest's WSGI lint."""
    app = webtest.TestApp(lambda environ, start_response: error_response(error)(environ, start_response))
    return app.get("/", expect_errors=True)


@pytest.mark.parametrize(("cls", "status", "code"), EXPECTED)
def test_error_class_maps_to_status_and_json(cls, status, code):
    response = served(cls())
    assert response.status_int == status
    assert response.content_type == "application/json"
    assert response.json == {"error": code, "detail": cls.detail}
    assert "Traceback" not in response.text


def test_every_error_class_is_covered():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    tested = {cls for cls, _, _ in EXPECTED} | {errors.MethodNotAllowed}
    assert {errors.HutchError, *subclasses(errors.HutchError)} == tested


def test_detail_can_be_specific():
    response = served(errors.Unroutable("No queue is bound to exchange 'scores'."))
    assert response.json == {"error": "unroutable", "detail": "No queue is bound to exchange 'scores'."}


def test_method_not_allowed_lists_allowed_methods():
    response = served(errors.MethodNotAllowed({"PUT": None, "POST": None}))
    assert response.status_int == 405
    assert response.headers["Allow"] == "POST, PUT"
    assert response.json["error"] == "method_not_allowed"
    assert "POST, PUT" in response.json["detail"]


def test_broker_unavailable_says_when_to_retry():
    assert served(errors.BrokerUnavailable()).headers["Retry-After"] == "5"
    assert served(errors.BrokerUnavailable("down", retry_after=12)).headers["Retry-After"] == "12"
    assert served(errors.PublishNacked()).headers["Retry-After"] == "5"


@pytest.mark.parametrize("cls", [errors.Unroutable, errors.NoResponder, errors.RpcTimeout, errors.NotFound])
def test_other_errors_carry_no_retry_after_or_allow(cls):
    headers = served(cls()).headers
    assert "Retry-After" not in headers
    assert "Allow" not in headers


def test_error_headers_are_per_instance():
    first = errors.HutchError(headers=[("X-A", "1")])
    second = errors.HutchError()
    assert second.headers == []
    assert first.headers == [("X-A", "1")]


@pytest.mark.parametrize("cls", [errors.IdempotencyInFlight, errors.IdempotencyUnavailable])
def test_idempotency_refusals_say_when_to_retry(cls):
    assert served(cls(retry_after=7)).headers["Retry-After"] == "7"
