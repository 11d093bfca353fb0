"""Server-Sent Events: the wire format, and an AMQP message as one event's data.

Each event's ``id`` is its position (``hutch.events.resume``), given by the
caller; the data is JSON with the message's properties, headers and body
(text, or a hex preview of a binary body).
"""

import base64
import codecs
import datetime
import decimal
import json
import math
import re

from hutch.messages import parse_content_type

RETRY_MS = 2000
LINE_BREAK = re.compile(r"\r\n|\r|\n")
TEXT_TYPES = ("text/",)
TEXT_SUBTYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "csv", "yaml")
PREVIEW_BYTES = 48
MAX_TIMESTAMP = 253402300800  # 10000-01-01: beyond, no ISO 8601 year
PROPERTIES = ("content_type", "content_encoding", "message_id", "correlation_id", "type", "app_id")


# --- the wire format ---------------------------------------------------------


def frame(data, event=None, event_id=None):
    """One event: optional ``event:`` and ``id:`` lines, ``data:`` lines, a blank line."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def json_frame(payload, event=None, event_id=None):
    return frame(json.dumps(payload, separators=(",", ":"), ensure_ascii=False), event, event_id)


def comment(text):
    return f": {LINE_BREAK.sub(' ', text)}\n\n".encode()


def retry(milliseconds=RETRY_MS):
    """How long an EventSource waits before it reconnects on its own."""
    return f"retry: {milliseconds}\n\n".encode()


# --- a message as an event ---------------------------------------------------


def describe(exchange, event_id, message, received, max_body):
    """The event's JSON: properties, headers and the body as text, or a binary summary.

    ``message`` is an aio-pika message.  At most ``max_body`` bytes of the
    body are kept (``truncated`` says so); ``size`` is always the whole body's.
    """
    body = message.body
    payload = {"id": event_id, "exchange": exchange, "received": iso_time(received)}
    for name in PROPERTIES:
        value = getattr(message, name)
        if value is not None:
            payload[name] = value
    payload["timestamp"] = amqp_time(message.timestamp)
    headers = {key: value for key, value in (message.headers or {}).items() if not key.startswith("x-stream")}
    payload["headers"] = json_safe(headers)
    payload["size"] = len(body)
    payload.update(body_view(message.content_type, message.content_encoding, body, max_body))
    return payload


def published_at(message, read_at):
    """When the message was published: its AMQP ``timestamp`` (the gateway sets it at publish, to the
    second), else ``read_at`` (an AMQP publisher that sets none: when an event server read it)."""
    timestamp = message.timestamp
    try:
        if isinstance(timestamp, datetime.datetime):
            timestamp = timestamp.timestamp()
        if timestamp and 0 < timestamp < MAX_TIMESTAMP:
            return float(timestamp)
    except (OverflowError, OSError, ValueError, TypeError):
        pass
    return read_at


def body_view(content_type, content_encoding, body, max_body):
    """``kind`` json/text/binary with ``body`` text, or a hex ``preview`` for binary."""
    kept = body[:max_body]
    truncated = len(body) > max_body
    media_type, charset = parse_content_type(content_type)
    if (content_encoding or "identity").lower() == "identity" and is_textual(media_type):
        text = decode(kept, charset, partial=truncated)
        if text is not None:
            kind = "json" if media_type == "application/json" or media_type.endswith("+json") else "text"
            return {"kind": kind, "body": text, "truncated": truncated}
    return {"kind": "binary", "body": None, "preview": kept[:PREVIEW_BYTES].hex(" "), "truncated": truncated}


def is_textual(media_type):
    if media_type.startswith(TEXT_TYPES):
        return True
    _, _, subtype = media_type.partition("/")
    return any(subtype == name or subtype.endswith("+" + name) for name in TEXT_SUBTYPES)


def decode(data, charset, partial):
    """Text, or None when the bytes are not valid in ``charset`` (or it is unknown).

    A truncated body may end inside a multi-byte character: that tail is dropped.
    """
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="strict")
        return decoder.decode(data, final=not partial)
    except (LookupError, UnicodeDecodeError):
        return None


def json_safe(value):
    """AMQP field values (bytes, Decimal, datetime, nested tables) as JSON values."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def iso_time(seconds):
    """Seconds since the epoch as ISO 8601 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def amqp_time(timestamp):
    """The AMQP ``timestamp`` property (a datetime or seconds) as ISO 8601, or None if absent or absurd."""
    try:
        if isinstance(timestamp, datetime.datetime):
            timestamp = timestamp.timestamp()
        return iso_time(timestamp) if timestamp else None
    except (OverflowError, OSError, ValueError, TypeError):
        return None
