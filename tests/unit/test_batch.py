"""hutch.web.batch: an NDJSON batch is checked whole, and a bad line is named by its number."""

import base64
import json
import uuid

import pytest

from hutch.errors import InvalidBatch, PayloadTooLarge
from hutch.messages import new_message_id
from hutch.web.batch import message_ids, parse_batch


def ndjson(*items):
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def refused(body, max_messages=1000):
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(body, max_messages)
    return caught.value.detail


def test_each_line_becomes_a_message_with_its_properties():
    body = ndjson(
        {"body": "héllo"},
        {
            "body_base64": base64.b64encode(b"\x00\xff").decode(),
            "content_type": "application/x-thing",
            "headers": {"Source": "lab", "x": "1"},
            "idempotency_key": "order-7",
            "correlation_id": "c-1",
        },
    )
    first, second = parse_batch(body, 1000, persistent=True)
    assert (first.number, first.message.body, first.key) == (1, "héllo".encode(), None)
    assert first.message.properties.content_type == "application/octet-stream"
    assert len(first.message.message_id) == 32  # a new UUID
    assert first.message.properties.delivery_mode == 2
    assert (second.number, second.message.body, second.key) == (2, b"\x00\xff", "order-7")
    properties = second.message.properties
    assert properties.message_id == "order-7"  # as one message's Idempotency-Key
    assert properties.content_type == "application/x-thing"
    assert properties.correlation_id == "c-1"
    assert properties.headers == {"Source": "lab", "x": "1"}
    assert properties.user_id is None and properties.reply_to is None


def test_blank_lines_carry_no_message_but_keep_the_numbering():
    lines = parse_batch(b'{"body": "a"}\n\n  \r\n{"body": "b"}', 1000)
    assert [line.number for line in lines] == [1, 4]
    assert parse_batch(b'{"body": "a"}\n', 1000, persistent=False)[0].message.properties.delivery_mode is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'["body"]', "must be a JSON object"),
        (b'{"body": "a", "priority": 9}', "unknown field 'priority'"),
        (b"{}", "exactly one of body and body_base64"),
        (b'{"body": "a", "body_base64": "YQ=="}', "exactly one of body and body_base64"),
        (b'{"body": 5}', "body must be a string"),
        (b'{"body": "\\ud800"}', "not valid Unicode"),
        (b'{"body_base64": "***"}', "not valid base64"),
        (b'{"body_base64": 5}', "body_base64 must be a string"),
        (b'{"body": "a", "content_type": "text"}', "content_type must look like type/subtype"),
        (b'{"body": "a", "idempotency_key": ""}', "idempotency_key must be 1-255"),
        (b'{"body": "a", "idempotency_key": "caf\\u00e9"}', "idempotency_key must be 1-255"),
        (b'{"body": "a", "correlation_id": 7}', "correlation_id must be 1-255"),
        (b'{"body": "a", "headers": ["x"]}', "headers must be a JSON object"),
        (b'{"body": "a", "headers": {"x": 1}}', "header 'x' must be a string"),
        (b'{"body": "a", "headers": {"x": "line\\nbreak"}}', "header 'x' must be a string"),
        (b'{"body": "a", "headers": {"\\ud800": "v"}}', "a header name must be"),
    ],
)
def test_a_bad_line_refuses_the_batch_by_its_number(line, says):
    detail = refused(b'{"body": "fine"}\n\n' + line + b'\n{"body": "also fine"}\n')
    assert detail.startswith("Line 3: ") and says in detail, detail


def test_the_property_limits_are_those_of_one_message():
    assert "at most 64 headers" in refused(
        ndjson({"body": "a", "headers": {f"h{i}": "v" for i in range(65)}})
    )
    assert "at most 4096" in refused(ndjson({"body": "a", "headers": {"h": "v" * 4097}}))
    assert "idempotency_key" in refused(ndjson({"body": "a", "idempotency_key": "k" * 256}))
    parse_batch(ndjson({"body": "a", "idempotency_key": "k" * 255, "headers": {"h": "v" * 4096}}), 1)


def test_header_names_are_any_text_an_amqp_table_key_holds():
    [line] = parse_batch(ndjson({"body": "a", "headers": {"": "empty", "Straße": "x", "k" * 255: "y"}}), 1)
    assert line.message.properties.headers == {"": "empty", "Straße": "x", "k" * 255: "y"}
    assert "a header name must be" in refused(ndjson({"body": "a", "headers": {"é" * 128: "v"}}))  # 256 bytes


def test_a_key_repeated_in_the_batch_is_not_refused_here():
    """As for two requests with one Idempotency-Key: hutch.web.bulk publishes it once with a store."""
    body = ndjson({"body": "a", "idempotency_key": "k"}, {"body": "b", "idempotency_key": "k"})
    assert [line.key for line in parse_batch(body, 2)] == ["k", "k"]


def test_an_empty_batch_is_refused():
    assert "no message" in refused(b"")
    assert "no message" in refused(b"\n\n")


def test_more_messages_than_max_batch_messages_is_413():
    body = ndjson(*({"body": str(i)} for i in range(4)))
    assert len(parse_batch(body, 4)) == 4
    with pytest.raises(PayloadTooLarge) as caught:
        parse_batch(body, 3)
    assert "more than 3 messages" in caught.value.detail


def test_fresh_message_ids_are_version_4_uuids_and_differ():
    ids = message_ids(500)
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert (parsed.hex, parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


def test_a_line_must_hold_one_value_and_be_utf8():
    assert refused(b'{"body": "a"}\n{"body": "b"} {"body": "c"}\n') == (
        "Line 2: not valid JSON (more after the first value)."
    )
    assert refused(b'{"body": "a"}\n\n{"body": "\xff"}\n').startswith("Line 3: not valid JSON")
    assert refused('{"body": "a"}\n\u00a0\n'.encode()).startswith("Line 2: not valid JSON")


def test_one_message_ids_are_version_4_uuids_too():
    ids = {new_message_id() for _ in range(500)}
    assert len(ids) == 500
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert (parsed.hex, parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
