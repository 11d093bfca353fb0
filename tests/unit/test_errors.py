"""Every HutchError becomes the contract's JSON error, or a page, in ``error_response``."""

import pytest
import webob
import webtest

from hutch import errors
from hutch.web.http import HTML_FIRST, JSON_FIRST, error_response, plain_error_page

EXPECTED = [
    (errors.HutchError, 500, "internal"),
    (errors.BadRequest, 400, "bad_request"),
    (errors.InvalidName, 400, "invalid_name"),
    (errors.InvalidMessage, 400, "invalid_message"),
    (errors.InvalidBatch, 400, "invalid_batch"),
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
    (errors.InvalidSubscription, 400, "invalid_subscription"),
    (errors.TargetRefused, 400, "target_refused"),
    (errors.NoSubscription, 404, "no_subscription"),
    (errors.SubscriptionStoreUnavailable, 503, "subscription_store_unavailable"),
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


# --- one path: JSON, or the route's page for a browser ------------------------------


def page(request, error):
    return webob.Response(text=f"page {error.code}", status=error.status, content_type="text/html")


def negotiated(error, accept, offers=JSON_FIRST):
    def application(environ, start_response):
        request = webob.Request(environ)
        return error_response(error, request, page, offers)(environ, start_response)

    headers = {"Accept": accept} if accept is not None else {}
    return webtest.TestApp(application).get("/", headers=headers, expect_errors=True)


@pytest.mark.parametrize(
    ("accept", "offers", "media_type"),
    [
        ("text/html", JSON_FIRST, "text/html"),
        ("application/json", HTML_FIRST, "application/json"),
        (None, JSON_FIRST, "application/json"),  # no preference: the first offer
        (None, HTML_FIRST, "text/html"),
        ("*/*", HTML_FIRST, "text/html"),
        ("text/html;q=0.5, application/json", JSON_FIRST, "application/json"),
        ("image/png", HTML_FIRST, "application/json"),  # nothing acceptable: the contract's JSON
    ],
)
def test_the_request_chooses_json_or_the_page(accept, offers, media_type):
    response = negotiated(errors.SessionStoreUnavailable(), accept, offers)
    assert response.status_int == 503
    assert response.content_type == media_type
    assert response.headers["Retry-After"] == "5"  # the error's headers, on either


def test_a_page_never_carries_the_basic_challenge():
    challenge = ("WWW-Authenticate", 'Basic realm="hutch"')
    as_page = negotiated(errors.Unauthorized(headers=[challenge]), "text/html")
    assert as_page.text == "page unauthorized" and "WWW-Authenticate" not in as_page.headers
    as_json = negotiated(errors.Unauthorized(headers=[challenge]), "application/json")
    assert as_json.headers["WWW-Authenticate"] == 'Basic realm="hutch"'


def test_without_a_page_it_is_always_json():
    app = webtest.TestApp(
        lambda environ, start_response: error_response(errors.NotFound())(environ, start_response)
    )
    response = app.get("/", headers={"Accept": "text/html"}, expect_errors=True)
    assert response.json["error"] == "not_found"


def test_the_plain_page_escapes_the_detail():
    request = webob.Request.blank("/", headers={"Accept": "text/html"})
    response = error_response(errors.BadRequest("<script>"), request, plain_error_page)
    assert response.status_int == 400 and "&lt;script&gt;" in response.text
