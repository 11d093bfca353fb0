"""The mapping between HTTP requests/responses and AMQP messages.

Only the properties the contract lists (docs/http.md, /openapi.json) cross from HTTP into AMQP; user_id,
reply_to, delivery_mode and every other property stay the gateway's.
"""

import dataclasses
import json
import os
import re
import time

import pika

from hutch.errors import InvalidHeader, InvalidMessage, PayloadTooLarge

HEADER_PREFIX = "HTTP_X_AMQP_HEADER_"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SHORTSTR_MAX = 255
MAX_HEADERS = 64
MAX_HEADER_VALUE = 4096
HEADER_TOKEN_JUNK = re.compile(r"[^A-Za-z0-9-]")
MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;\s*[\x20-\x7e]*)?")
FORM_APP_ID = "hutch-dashboard"  # the app_id of what the dashboard's form broadcasts
# The HTTP content codings (IANA registry) a reply's content_encoding may pass as Content-Encoding;
# anything else (py-amqp sets ``utf-8`` on text bodies) would make HTTP clients fail to decode the body.
HTTP_CODINGS = frozenset(
    [
        "aes128gcm",
        "br",
        "compress",
        "dcb",
        "dcz",
        "deflate",
        "exi",
        "gzip",
        "identity",
        "pack200-gzip",
        "x-compress",
        "x-gzip",
        "zstd",
    ]
)
AMQP_ENCODING_HEADER = "X-Amqp-Content-Encoding"  # where any other content_encoding of a reply goes


@dataclasses.dataclass(frozen=True)
class Message:
    """A message ready to publish: body bytes and pika properties."""

    body: bytes
    properties: pika.BasicProperties

    @property
    def message_id(self):
        return self.properties.message_id


MESSAGE_ID_KEY = "hutch.message_id"  # the environ key where the access log finds the message_id


def message_from_environ(environ, body, persistent=False):
    """Build a ``Message`` from a WSGI environ and the already-read body."""
    headers = {}
    for key in [key for key in environ if key.startswith(HEADER_PREFIX)]:  # mostly none
        name = key[len(HEADER_PREFIX) :].replace("_", "-").lower()
        if not name:
            raise InvalidHeader("X-Amqp-Header- needs a name after the prefix.")
        headers[name] = _checked_value(f"X-Amqp-Header-{name}", environ[key], MAX_HEADER_VALUE)
    if len(headers) > MAX_HEADERS:
        raise InvalidHeader(f"At most {MAX_HEADERS} X-Amqp-Header-* headers are allowed.")
    properties = pika.BasicProperties(
        content_type=_shortstr(environ, "CONTENT_TYPE", "Content-Type") or DEFAULT_CONTENT_TYPE,
        content_encoding=_shortstr(environ, "HTTP_CONTENT_ENCODING", "Content-Encoding"),
        message_id=_shortstr(environ, "HTTP_IDEMPOTENCY_KEY", "Idempotency-Key") or new_message_id(),
        correlation_id=_shortstr(environ, "HTTP_X_CORRELATION_ID", "X-Correlation-Id"),
        timestamp=int(time.time()),
        headers=headers or None,
        delivery_mode=pika.DeliveryMode.Persistent if persistent else None,
    )
    environ[MESSAGE_ID_KEY] = properties.message_id
    return Message(body, properties)


UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits of a UUID ...
UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # ... set for version 4, the RFC 4122 variant


def new_message_id():
    """A random version-4 UUID in hex, as ``uuid.uuid4().hex`` makes it, in half its time."""
    return "%032x" % (int.from_bytes(os.urandom(16), "big") & UUID4_CLEAR | UUID4_SET)


def message_from_form(content_type, text, limit):
    """A message typed into the dashboard's form, as text: 400 ``invalid_message`` for a bad
    content type or invalid JSON, 413 over ``limit`` bytes of UTF-8."""
    if not MEDIA_TYPE.fullmatch(content_type) or len(content_type) > SHORTSTR_MAX:
        raise InvalidMessage("The content type must look like type/subtype, e.g. application/json.")
    body = text.encode("utf-8")
    if len(body) > limit:
        raise PayloadTooLarge(f"The message is {len(body)} bytes; the limit is {limit}.")
    media_type, _ = parse_content_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            json.loads(text)
        except ValueError as exc:
            raise InvalidMessage(f"The message is not valid JSON: {exc}.") from None
    properties = pika.BasicProperties(
        content_type=content_type,
        message_id=new_message_id(),
        timestamp=int(time.time()),
        app_id=FORM_APP_ID,
    )
    return Message(body, properties)


def _shortstr(environ, key, header):
    value = environ.get(key)
    if not value:
        return None
    return _checked_value(header, value, SHORTSTR_MAX)


def _checked_value(header, value, limit):
    """Header values must be printable ASCII and fit an AMQP short string."""
    if not value.isascii() or not value.isprintable():
        raise InvalidHeader(f"{header} must be printable ASCII.")
    if len(value) > limit:
        raise InvalidHeader(f"{header} is longer than {limit} characters.")
    return value


def response_headers(properties):
    """HTTP headers for a reply message, mapped back as the contract says."""
    content_type = _header_safe(properties.content_type or "") or DEFAULT_CONTENT_TYPE
    headers = [("Content-Type", content_type)]
    if properties.content_encoding:
        encoding = _header_safe(properties.content_encoding)
        headers.append((content_encoding_header(encoding), encoding))
    for name, value in (properties.headers or {}).items():
        if name == "http_status":
            continue
        token = HEADER_TOKEN_JUNK.sub("", str(name))
        if token:
            headers.append((f"X-Amqp-Header-{token}", _header_safe(value)))
            if len(headers) > MAX_HEADERS:  # as for requests; http.client refuses over 100
                break
    return headers


def content_encoding_header(encoding):
    """``Content-Encoding`` for a real HTTP content coding (or a list of them), else
    ``X-Amqp-Content-Encoding``: an AMQP content_encoding such as ``utf-8`` is no HTTP coding."""
    codings = [coding.strip().lower() for coding in encoding.split(",")]
    if all(coding in HTTP_CODINGS for coding in codings):
        return "Content-Encoding"
    return AMQP_ENCODING_HEADER


def reply_status(properties):
    """The HTTP status a reply asks for through its ``http_status`` header."""
    value = (properties.headers or {}).get("http_status")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        status = int(value)
    except (TypeError, ValueError):
        return 200
    return status if 200 <= status <= 599 else 200  # a 1xx is interim, never a final answer


def _header_safe(value):
    """Responders are not trusted: drop anything that could split a header."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value)
    if not (text.isascii() and text.isprintable()):  # the usual value skips the per-character filter
        text = "".join(ch for ch in text if ch.isprintable() and ch.isascii())
    return text[:MAX_HEADER_VALUE]


def parse_content_type(content_type):
    """``(media type, charset)`` from a Content-Type; charset defaults to UTF-8."""
    media_type, _, parameters = (content_type or "").partition(";")
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media_type.strip().lower(), charset
