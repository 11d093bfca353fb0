"""Request bodies and the little router every app module uses."""

import io

import pytest
import webtest

from hutch.errors import BadRequest, PayloadTooLarge, Unroutable
from hutch.web.http import GATEWAY_KEY, Route, Routes, json_response, read_body

# --- read_body ---------------------------------------------------------------


class CountingStream(io.BytesIO):
    """A wsgi.input that remembers how much the reader asked for."""

    def __init__(self, data):
        super().__init__(data)
        self.requested = []

    def read(self, size=-1):
        self.requested.append(size)
        return super().read(size)


def body_environ(data, content_length=None, chunked=False):
    environ = {"wsgi.input": CountingStream(data)}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    return environ


def test_body_within_the_limit_is_read_exactly():
    assert read_body(body_environ(b"hello", "5"), limit=5) == b"hello"


def test_only_content_length_bytes_are_read():
    assert read_body(body_environ(b"hello, world", "5"), limit=100) == b"hello"


def test_declared_length_over_the_limit_is_413_before_reading():
    environ = body_environ(b"x" * 6, "6")
    with pytest.raises(PayloadTooLarge) as caught:
        read_body(environ, limit=5)
    assert caught.value.status == 413
    assert environ["wsgi.input"].requested == []


def test_content_length_longer_than_the_body_is_400():
    with pytest.raises(BadRequest, match="shorter"):
        read_body(body_environ(b"abc", "10"), limit=100)


@pytest.mark.parametrize("length", ["ten", "-1", "1.5", "0x10"])
def test_content_length_that_is_not_a_size_is_400(length):
    with pytest.raises(BadRequest) as caught:
        read_body(body_environ(b"abc", length), limit=100)
    assert caught.value.status == 400


def test_no_length_and_not_chunked_is_an_empty_body():
    environ = body_environ(b"ignored")
    assert read_body(environ, limit=100) == b""
    assert environ["wsgi.input"].requested == []


def test_zero_length_is_an_empty_body():
    assert read_body(body_environ(b"ignored", "0"), limit=100) == b""


def test_chunked_body_is_read_up_to_the_limit():
    assert read_body(body_environ(b"x" * 5, chunked=True), limit=5) == b"x" * 5


def test_chunked_body_over_the_limit_is_413_without_reading_it_all():
    environ = body_environ(b"x" * 1000, chunked=True)
    with pytest.raises(PayloadTooLarge):
        read_body(environ, limit=10)
    assert environ["wsgi.input"].requested == [11]


def test_chunked_is_case_insensitive():
    assert (
        read_body(body_environ(b"abc", chunked=False) | {"HTTP_TRANSFER_ENCODING": "Chunked"}, 10) == b"abc"
    )


# --- Routes ------------------------------------------------------------------


def echo_names(request, gateway, **names):
    return json_response(200, {"names": names, "gateway": gateway, "method": request.method})


def fail_unroutable(request, gateway, exchange):
    raise Unroutable()


def crash(request, gateway):
    raise RuntimeError("not a HutchError")


ROUTES = Routes(
    Route("", GET=echo_names),
    Route("{exchange}", POST=echo_names),
    Route("{exchange}/queues/{consumer}", PUT=echo_names, DELETE=echo_names),
    Route("{exchange}/{routing_key}", POST=echo_names),
    Route("fail/{exchange}/now", POST=fail_unroutable),
)


@pytest.fixture
def client():
    return webtest.TestApp(ROUTES, extra_environ={GATEWAY_KEY: "the-gateway"})


def test_placeholders_become_view_arguments(client):
    response = client.put("/scores/queues/archive")
    assert response.json == {
        "names": {"exchange": "scores", "consumer": "archive"},
        "gateway": "the-gateway",
        "method": "PUT",
    }


def test_empty_pattern_matches_the_module_root(client):
    assert client.get("").json["names"] == {}


def test_literal_segments_must_match(client):
    assert client.post("/fail/x/now", status=409).json["error"] == "unroutable"
    assert client.post("/fail/x/later", status=404).json["error"] == "not_found"
    assert client.post("/fail/x").json["names"] == {"exchange": "fail", "routing_key": "x"}


@pytest.mark.parametrize("path", ["/a/b/c/d", "/a/queue/b", "/a/", "/scores/queues/archive/"])
def test_unknown_paths_are_404_json(client, path):
    response = client.post(path, status=404)
    assert response.json["error"] == "not_found"


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/scores/queues/archive", status=405)
    assert response.headers["Allow"] == "DELETE, PUT"
    assert response.json["error"] == "method_not_allowed"


def test_head_is_answered_by_the_get_view_without_body(client):
    response = client.head("")
    assert response.status_int == 200
    assert response.body == b""


def test_head_without_a_get_view_is_405(client):
    assert client.head("/scores", status=405).headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/bad%20name", 400, "exchange"),
        ("/amq.fanout", 403, "exchange"),
        ("/x/amq.key", 403, "routing key"),
        ("/x/queues/amq.c", 403, "consumer"),
        ("/" + "x" * 128, 400, "exchange"),
        ("/x/caf%C3%A9", 400, "routing key"),
    ],
)
def test_placeholders_are_checked_names(client, path, status, kind):
    method = client.put if "/queues/" in path else client.post
    response = method(path, status=status)
    assert response.json["error"] in ("invalid_name", "reserved_name")
    assert kind in response.json["detail"]


def test_a_view_raising_hutch_error_gets_its_json(client):
    response = client.post("/fail/x/now", status=409)
    assert response.json == {"error": "unroutable", "detail": Unroutable.detail}


def test_other_exceptions_are_not_swallowed():
    client = webtest.TestApp(Routes(Route("", GET=crash)), extra_environ={GATEWAY_KEY: None})
    with pytest.raises(RuntimeError, match="not a HutchError"):
        client.get("")


def test_json_response_has_no_charset_parameter():
    response = json_response(201, {"a": 1}, headers=[("X-A", "b")])
    assert response.status_int == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-A"] == "b"
    assert response.json == {"a": 1}


@pytest.mark.parametrize(("path", "shown"), [("/sc%C3%B6re", "scöre"), ("/x/%E2%82%AC", "€")])
def test_a_non_ascii_name_is_shown_as_sent(client, path, shown):
    """PATH_INFO carries UTF-8 bytes as latin-1 characters; the error names what the client sent."""
    detail = client.post(path, status=400).json["detail"]
    assert repr(shown) in detail


def test_a_name_that_is_not_utf8_is_400_with_a_readable_detail(client):
    detail = client.post("/sc%F6re", status=400).json["detail"]
    assert "'sc\ufffdre'" in detail


# --- what a Route declares -------------------------------------------------------


def view(request, gateway):
    return json_response(200, {})


def test_a_permission_is_an_idiom_a_tuple_or_one_per_method():
    route = Route("{exchange}", {"GET": "watch", "POST": ("watch", "broadcast")}, GET=view, POST=view)
    assert route.permissions == {"GET": ("watch",), "POST": ("watch", "broadcast")}
    assert Route("", "metrics", GET=view).permissions == {"GET": ("metrics",)}
    assert Route("", GET=view).permissions == {"GET": ()}


def test_an_unknown_idiom_is_refused_at_start_up():
    with pytest.raises(ValueError, match="publish"):
        Route("{exchange}", {"POST": ("watch", "publish")}, POST=view)


def test_a_routes_documented_path_keeps_a_declared_slash():
    assert Route("/", GET=view).path("dashboard") == "/dashboard/"
    assert Route("", GET=view).path("health") == "/health"
    assert Route("", GET=view).path("") == "/"
    assert (
        Route("{exchange}/queues/{consumer}", PUT=view).path("notify")
        == "/notify/{exchange}/queues/{consumer}"
    )


def test_a_route_with_pages_reads_the_session_and_so_does_a_browser_route():
    assert Route("", page=object(), GET=view).reads_session
    assert Route("{exchange}", "watch", browser=True, GET=view).reads_session
    assert not Route("{exchange}", "broadcast", POST=view).reads_session
