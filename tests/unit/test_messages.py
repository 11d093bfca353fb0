"""HTTP <-> AMQP property mapping (the contract's request -> message table)."""

import time
import uuid

import pika
import pytest

from hutch.errors import InvalidHeader, InvalidMessage, PayloadTooLarge
from hutch.messages import (
    FORM_APP_ID,
    message_from_environ,
    message_from_form,
    reply_status,
    response_headers,
)


def environ(**headers):
    base = {"REQUEST_METHOD": "POST", "PATH_INFO": "/x"}
    base.update(headers)
    return base


def test_every_contract_row_is_mapped():
    message = message_from_environ(
        environ(
            CONTENT_TYPE="application/json",
            HTTP_CONTENT_ENCODING="gzip",
            HTTP_IDEMPOTENCY_KEY="order-17",
            HTTP_X_CORRELATION_ID="corr-1",
            HTTP_X_AMQP_HEADER_TENANT="acme",
            HTTP_X_AMQP_HEADER_TRACE_ID="abc",
        ),
        b'{"score": 1}',
    )
    props = message.properties
    assert message.body == b'{"score": 1}'
    assert props.content_type == "application/json"
    assert props.content_encoding == "gzip"
    assert props.message_id == "order-17"
    assert message.message_id == "order-17"
    assert props.correlation_id == "corr-1"
    assert props.headers == {"tenant": "acme", "trace-id": "abc"}


def test_defaults_when_headers_are_absent():
    before = int(time.time())
    props = message_from_environ(environ(), b"").properties
    assert props.content_type == "application/octet-stream"
    assert props.content_encoding is None
    assert props.correlation_id is None
    assert props.headers is None
    assert uuid.UUID(props.message_id)
    assert before <= props.timestamp <= int(time.time())


def test_each_message_gets_its_own_id():
    assert message_from_environ(environ(), b"").message_id != message_from_environ(environ(), b"").message_id


def test_persistent_sets_delivery_mode_2_and_transient_leaves_it_unset():
    assert message_from_environ(environ(), b"", persistent=True).properties.delivery_mode == 2
    assert message_from_environ(environ(), b"").properties.delivery_mode is None


def test_what_a_client_cannot_set():
    props = message_from_environ(
        environ(
            HTTP_USER_ID="admin",
            HTTP_X_USER_ID="admin",
            HTTP_REPLY_TO="amq.rabbitmq.reply-to",
            HTTP_X_REPLY_TO="elsewhere",
            HTTP_DELIVERY_MODE="2",
            HTTP_X_DELIVERY_MODE="2",
            HTTP_EXPIRATION="1",
            HTTP_PRIORITY="9",
            HTTP_X_AMQP_TYPE="evil",
            HTTP_X_FORWARDED_FOR="10.0.0.1",
            HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==",
            HTTP_COOKIE="hutch_session=1",
        ),
        b"",
    ).properties
    assert props.user_id is None
    assert props.reply_to is None
    assert props.delivery_mode is None
    assert props.expiration is None
    assert props.priority is None
    assert props.type is None
    assert props.app_id is None
    assert props.headers is None


def test_amqp_header_named_like_a_property_stays_a_header():
    props = message_from_environ(
        environ(HTTP_X_AMQP_HEADER_USER_ID="admin", HTTP_X_AMQP_HEADER_DELIVERY_MODE="2"), b""
    ).properties
    assert props.user_id is None
    assert props.delivery_mode is None
    assert props.headers == {"user-id": "admin", "delivery-mode": "2"}


@pytest.mark.parametrize(
    "key",
    [
        "CONTENT_TYPE",
        "HTTP_CONTENT_ENCODING",
        "HTTP_IDEMPOTENCY_KEY",
        "HTTP_X_CORRELATION_ID",
        "HTTP_X_AMQP_HEADER_A",
    ],
)
@pytest.mark.parametrize(
    "value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "caf\u00e9", "nul\x00", "tab\there", "\x7f"]
)
def test_control_and_non_ascii_values_are_400(key, value):
    with pytest.raises(InvalidHeader) as caught:
        message_from_environ(environ(**{key: value}), b"")
    assert caught.value.status == 400


@pytest.mark.parametrize("key", ["CONTENT_TYPE", "HTTP_IDEMPOTENCY_KEY", "HTTP_X_CORRELATION_ID"])
def test_short_string_properties_are_bounded(key):
    assert message_from_environ(environ(**{key: "k" * 255}), b"")
    with pytest.raises(InvalidHeader):
        message_from_environ(environ(**{key: "k" * 256}), b"")


def test_header_values_are_bounded():
    message_from_environ(environ(HTTP_X_AMQP_HEADER_A="v" * 4096), b"")
    with pytest.raises(InvalidHeader):
        message_from_environ(environ(HTTP_X_AMQP_HEADER_A="v" * 4097), b"")


def test_header_count_is_bounded():
    many = {f"HTTP_X_AMQP_HEADER_H{i}": "v" for i in range(64)}
    assert len(message_from_environ(environ(**many), b"").properties.headers) == 64
    many["HTTP_X_AMQP_HEADER_ONE_TOO_MANY"] = "v"
    with pytest.raises(InvalidHeader):
        message_from_environ(environ(**many), b"")


def test_header_prefix_without_a_name_is_400():
    with pytest.raises(InvalidHeader):
        message_from_environ(environ(HTTP_X_AMQP_HEADER_="v"), b"")


# --- replies mapped back -----------------------------------------------------


def test_reply_properties_map_back():
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers={"tenant": "acme", "trace-id": b"abc", "count": 3, "http_status": 201},
    )
    assert response_headers(props) == [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
        ("X-Amqp-Header-tenant", "acme"),
        ("X-Amqp-Header-trace-id", "abc"),
        ("X-Amqp-Header-count", "3"),
    ]


@pytest.mark.parametrize("encoding", ["gzip", "br", "identity", "zstd", "deflate, gzip", "GZIP"])
def test_reply_http_content_codings_pass_as_content_encoding(encoding):
    headers = dict(response_headers(pika.BasicProperties(content_encoding=encoding)))
    assert headers["Content-Encoding"] == encoding
    assert "X-Amqp-Content-Encoding" not in headers


@pytest.mark.parametrize("encoding", ["utf-8", "UTF-8", "base64", "x-custom", "gzip, utf-8"])
def test_reply_content_encoding_that_is_no_http_coding_gets_its_own_header(encoding):
    """py-amqp sets content_encoding utf-8 on str bodies: as Content-Encoding, curl --compressed fails."""
    headers = dict(response_headers(pika.BasicProperties(content_encoding=encoding)))
    assert "Content-Encoding" not in headers
    assert headers["X-Amqp-Content-Encoding"] == encoding


def test_reply_without_content_type_is_octet_stream():
    assert response_headers(pika.BasicProperties()) == [("Content-Type", "application/octet-stream")]


def _no_header_splitting(headers):
    for name, value in headers:
        assert "\r" not in name and "\n" not in name and ":" not in name
        assert value.isascii() and value.isprintable(), (name, value)


def test_responder_header_values_cannot_split_headers():
    props = pika.BasicProperties(
        content_encoding="gzip\r\nSet-Cookie: a=1",
        headers={"a": "x\r\nSet-Cookie: b=2", "b": b"y\nz", "c": "caf\u00e9", "d": "\x00nul"},
    )
    headers = response_headers(props)
    _no_header_splitting(headers)
    assert dict(headers)["X-Amqp-Header-a"] == "xSet-Cookie: b=2"


def test_responder_header_names_are_reduced_to_tokens():
    props = pika.BasicProperties(headers={"a\r\nSet-Cookie": "1", "b: c": "2", "\r\n": "3", "é": "4"})
    headers = response_headers(props)
    _no_header_splitting(headers)
    assert [name for name, _ in headers] == ["Content-Type", "X-Amqp-Header-aSet-Cookie", "X-Amqp-Header-bc"]


@pytest.mark.parametrize("content_type", ["text/plain\r\nSet-Cookie: a=1", "text/plain\nX: y", "caf\u00e9/x"])
def test_responder_content_type_cannot_split_headers(content_type):
    _no_header_splitting(response_headers(pika.BasicProperties(content_type=content_type)))


def test_responder_header_values_are_bounded():
    headers = response_headers(pika.BasicProperties(headers={"big": "v" * 10000}))
    assert len(dict(headers)["X-Amqp-Header-big"]) == 4096


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (201, 201),
        ("404", 404),
        (b"418", 418),
        (100, 200),  # an interim 1xx cannot be a final response
        (199, 200),
        (200, 200),
        (599, 599),
        (99, 200),
        (600, 200),
        (-1, 200),
        ("abc", 200),
        ("", 200),
        (None, 200),
        ("200\r\nX: y", 200),
        (b"\xff", 200),
    ],
)
def test_reply_status_from_http_status_header(value, status):
    assert reply_status(pika.BasicProperties(headers={"http_status": value})) == status


def test_reply_status_defaults_to_200():
    assert reply_status(pika.BasicProperties()) == 200
    assert reply_status(pika.BasicProperties(headers={"other": 500})) == 200


# --- the dashboard's form ---------------------------------------------------------


def test_a_form_message_is_typed_and_marked_as_the_dashboards():
    message = message_from_form("application/json", '{"a": 1}', limit=100)
    assert message.body == b'{"a": 1}'
    assert message.properties.content_type == "application/json"
    assert message.properties.app_id == FORM_APP_ID
    assert len(message.message_id) == 32 and message.properties.timestamp


@pytest.mark.parametrize(
    ("content_type", "text", "error"),
    [
        ("not a type", "x", InvalidMessage),
        ("text/plain\r\nX-Evil: 1", "x", InvalidMessage),
        ("application/json", "{", InvalidMessage),
        ("application/vnd.x+json", "[", InvalidMessage),
        ("text/plain", "é" * 51, PayloadTooLarge),  # 102 bytes of UTF-8
    ],
)
def test_a_form_message_is_refused_as_the_form_shows_it(content_type, text, error):
    with pytest.raises(error):
        message_from_form(content_type, text, limit=100)
