"""Bulk publishing's request body: NDJSON lines in, checked ``Message``s out.

One JSON object a line: ``body`` (text, sent as UTF-8) or ``body_base64``,
and optionally ``content_type``, ``headers``, ``idempotency_key`` and
``correlation_id``.  The whole body is checked before anything is
published, so a client never has to guess which half of a bad batch went
out: the first bad line is a 400 naming its number, and a batch over
``max_batch_messages`` is a 413.  Blank lines (a trailing newline) carry
no message.  The limits on each property are those of one message
(``hutch.messages``).
"""

import base64
import binascii
import dataclasses
import json
import os
import time

import pika

from hutch.errors import InvalidBatch, PayloadTooLarge
from hutch.messages import (
    DEFAULT_CONTENT_TYPE,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MEDIA_TYPE,
    SHORTSTR_MAX,
    Message,
)

FIELDS = frozenset({"body", "body_base64", "content_type", "headers", "idempotency_key", "correlation_id"})
HEADER_NAME = SHORTSTR_MAX  # an AMQP table key is a short string
JSON_SPACE = " \t\r"  # JSON's whitespace, besides the newline that ends a line
DECODE = json.JSONDecoder().raw_decode  # one value from a str: json.loads without its checks


@dataclasses.dataclass(frozen=True)
class Line:
    """One message of a batch; ``key`` is its ``idempotency_key`` (None without one)."""

    number: int
    message: Message
    key: str | None


def parse_batch(body, max_messages, persistent=False):
    """The batch's messages in order; ``InvalidBatch`` (400) for the first bad line, 413 over the limit."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = body.count(b"\n", 0, exc.start) + 1
        raise InvalidBatch(f"Line {number}: not valid JSON (not UTF-8).") from None
    numbered = [
        (number, raw) for number, raw in enumerate(text.split("\n"), start=1) if raw.strip(JSON_SPACE)
    ]
    if len(numbered) > max_messages:
        raise PayloadTooLarge(f"The batch holds more than {max_messages} messages (max_batch_messages).")
    if not numbered:
        raise InvalidBatch("The batch holds no message: send one JSON object a line.")
    timestamp = int(time.time())
    lines = []
    checked_types = set()  # content types that passed the check (a batch mostly repeats one)
    for (number, raw), fresh_id in zip(numbered, message_ids(len(numbered)), strict=True):
        lines.append(_line(number, raw, timestamp, persistent, fresh_id, checked_types))
    return lines


def message_ids(count):
    """``count`` random version-4 UUIDs in hex, as ``uuid.uuid4().hex`` makes them, from one read of
    the system's randomness (a third of the cost of ``uuid4`` each, for a batch's unkeyed lines)."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(octet & 0x0F | 0x40 for octet in raw[6::16])  # version 4
    raw[8::16] = bytes(octet & 0x3F | 0x80 for octet in raw[8::16])  # the RFC 4122 variant
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def _line(number, raw, timestamp, persistent, fresh_id, checked_types):
    """One line's message.  The common line (a text ``body``, maybe a ``content_type`` seen before
    in the batch) takes the short way; anything else is checked field by field."""
    raw = raw.strip(JSON_SPACE)
    try:
        item, end = DECODE(raw)
    except ValueError as exc:
        raise InvalidBatch(f"Line {number}: not valid JSON ({exc}).") from None
    if end != len(raw):
        raise InvalidBatch(f"Line {number}: not valid JSON (more after the first value).")
    if item.__class__ is not dict:
        raise InvalidBatch(f"Line {number}: must be a JSON object.")
    if not item.keys() <= FIELDS:
        raise InvalidBatch(f"Line {number}: unknown field {sorted(item.keys() - FIELDS)[0]!r}.")
    get = item.get
    text = get("body")
    if text.__class__ is str and "body_base64" not in item:
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise InvalidBatch(f"Line {number}: body is not valid Unicode text.") from None
    else:
        body = _body(number, item)
    content_type = get("content_type")
    if content_type is None:
        content_type = DEFAULT_CONTENT_TYPE
    elif content_type.__class__ is not str or content_type not in checked_types:
        checked_types.add(_content_type(number, content_type))
    key = get("idempotency_key")
    if key is not None:
        _shortstr(number, "idempotency_key", key)
    correlation_id = get("correlation_id")
    if correlation_id is not None:
        _shortstr(number, "correlation_id", correlation_id)
    headers = get("headers")
    properties = pika.BasicProperties(
        content_type=content_type,
        message_id=key or fresh_id,
        correlation_id=correlation_id,
        timestamp=timestamp,
        headers=None if headers is None else _headers(number, headers),
        delivery_mode=pika.DeliveryMode.Persistent if persistent else None,
    )
    return Line(number, Message(body, properties), key)


def _body(number, item):
    if ("body" in item) == ("body_base64" in item):
        raise InvalidBatch(f"Line {number}: give exactly one of body and body_base64.")
    if "body" in item:
        raise InvalidBatch(f"Line {number}: body must be a string (use body_base64 for bytes).")
    encoded = item["body_base64"]
    if not isinstance(encoded, str):
        raise InvalidBatch(f"Line {number}: body_base64 must be a string.")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBatch(f"Line {number}: body_base64 is not valid base64.") from None


def _content_type(number, value):
    if not isinstance(value, str) or len(value) > SHORTSTR_MAX or not MEDIA_TYPE.fullmatch(value):
        raise InvalidBatch(f"Line {number}: content_type must look like type/subtype, e.g. application/json.")
    return value


def _shortstr(number, field, value):
    if not isinstance(value, str) or not _printable(value) or not 0 < len(value) <= SHORTSTR_MAX:
        raise InvalidBatch(f"Line {number}: {field} must be 1-{SHORTSTR_MAX} printable ASCII characters.")


def _headers(number, headers):
    """AMQP headers: names as sent (JSON keeps their case; any text an AMQP table key holds), values
    printable ASCII as for one message."""
    if headers is None:
        return None
    if not isinstance(headers, dict):
        raise InvalidBatch(f"Line {number}: headers must be a JSON object of strings.")
    if len(headers) > MAX_HEADERS:
        raise InvalidBatch(f"Line {number}: at most {MAX_HEADERS} headers are allowed.")
    checked = {}
    for name, value in headers.items():
        if not _fits_shortstr(name):
            raise InvalidBatch(
                f"Line {number}: a header name must be text of at most {HEADER_NAME} bytes of UTF-8."
            )
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE or not _printable(value):
            raise InvalidBatch(
                f"Line {number}: header {name!r} must be a string of at most {MAX_HEADER_VALUE} "
                "printable ASCII characters."
            )
        checked[name] = value
    return checked or None


def _fits_shortstr(text):
    """An AMQP short string holds it: at most 255 bytes of UTF-8 (no lone surrogate)."""
    try:
        return len(text) <= SHORTSTR_MAX and len(text.encode("utf-8")) <= SHORTSTR_MAX
    except UnicodeEncodeError:
        return False


def _printable(text):
    return text.isascii() and text.isprintable()
