"""A message as one Server-Sent Event: the wire format, what the page gets to show."""

import decimal
import json

import aio_pika

from hutch.events import sse


def test_frames_put_every_line_of_data_on_its_own_data_field():
    expected = b"event: gap\nid: 7\ndata: a\ndata: b\ndata: c\n\n"
    assert sse.frame("a\nb\r\nc", event="gap", event_id="7") == expected
    assert sse.comment("heart\nbeat") == b": heart beat\n\n"
    assert sse.retry(1500) == b"retry: 1500\n\n"


def describe(body, max_body=1024, **values):
    values.setdefault("message_id", "m1")
    return sse.describe("scores", "17", aio_pika.Message(body, **values), 1700000000.5, max_body)


def test_the_position_is_the_event_id_and_stream_headers_stay_out():
    message = aio_pika.Message(b"x", message_id="m1", headers={"x-stream-offset": 17, "team": "home"})
    event = sse.describe("scores", "17", message, 1700000000.5, 1024)
    assert (event["id"], event["message_id"], event["headers"]) == ("17", "m1", {"team": "home"})


def test_json_and_text_bodies_are_text():
    event = describe(b'{"score": 1}', content_type="application/json")
    assert (event["kind"], event["body"], event["truncated"]) == ("json", '{"score": 1}', False)
    assert describe(b"<b>hi</b>", content_type="text/html")["kind"] == "text"
    assert describe(b"caf\xe9", content_type="text/plain; charset=latin-1")["body"] == "café"
    assert describe(b"{}", content_type="application/vnd.scores+json")["kind"] == "json"


def test_binary_is_summarised_by_size_and_a_hex_preview():
    event = describe(bytes(range(100)), content_type="application/octet-stream")
    assert (event["kind"], event["body"], event["size"]) == ("binary", None, 100)
    assert event["preview"].startswith("00 01 02") and len(event["preview"].split()) == sse.PREVIEW_BYTES
    # text that is compressed, or not valid in its charset, is binary too
    assert describe(b"\x1f\x8b", content_type="text/plain", content_encoding="gzip")["kind"] == "binary"
    assert describe(b"\xff\xfe", content_type="text/plain")["kind"] == "binary"


def test_large_bodies_are_cut_without_splitting_a_character():
    event = describe("ééé".encode(), max_body=3, content_type="text/plain")
    assert (event["body"], event["truncated"], event["size"]) == ("é", True, 6)


def test_properties_headers_and_times_become_json():
    event = describe(
        b"",
        content_type="text/plain",
        correlation_id="c-1",
        app_id="scoreboard",
        timestamp=1700000000,
        headers={"team": b"home", "ratio": decimal.Decimal("1.5"), "odd": float("nan"), "nested": {"a": [1]}},
    )
    assert event["received"] == "2023-11-14T22:13:20.500Z"
    assert event["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert event["headers"] == {"team": "home", "ratio": "1.5", "odd": "nan", "nested": {"a": [1]}}
    assert (event["correlation_id"], event["app_id"]) == ("c-1", "scoreboard")
    json.loads(json.dumps(event, allow_nan=False))  # the browser's JSON.parse accepts it


def test_received_is_when_the_message_was_published_not_when_it_was_read():
    """The gateway stamps ``timestamp`` at publish: every replayed event keeps its own time."""
    import datetime

    published = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    message = aio_pika.Message(b"x", timestamp=published)
    assert sse.published_at(message, 1800000000.0) == published.timestamp()
    event = sse.describe("scores", "1", message, sse.published_at(message, 1800000000.0), 1024)
    assert event["received"] == "2026-01-02T03:04:05.000Z"
    # an AMQP publisher that sets no timestamp (or an absurd one): when it was read
    assert sse.published_at(aio_pika.Message(b"x"), 1800000000.5) == 1800000000.5


def test_a_refused_declaration_maps_by_the_exception_class_as_aiormq_gives_no_reply_code():
    import aiormq

    from hutch.errors import BrokerUnavailable, Forbidden, PreconditionFailed
    from hutch.events.consumer import broker_error

    clash = aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED - inequivalent arg 'type'")
    assert getattr(clash, "reply_code", None) is None
    assert isinstance(broker_error(clash), PreconditionFailed)
    assert isinstance(broker_error(aiormq.exceptions.ChannelAccessRefused("ACCESS_REFUSED")), Forbidden)
    assert isinstance(broker_error(ConnectionError("gone")), BrokerUnavailable)
