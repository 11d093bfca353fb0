"""AMQP 0-9-1 frames for the direct publisher, through pika's own codec.

pika.spec and pika.frame are plain functions of their arguments (no I/O,
no connection state), so the direct publisher encodes and decodes with
them: the bytes on the wire are exactly what a pika connection would send.
Encoding a publish costs a few microseconds, a small part of a request; a
hand-written encoder would save little and be one more thing to keep right.
"""

import collections
import operator
import struct

from pika import data, frame, spec

PROTOCOL_HEADER = frame.ProtocolHeader().marshal()
HEARTBEAT = frame.Heartbeat().marshal()
FRAME_OVERHEAD = spec.FRAME_HEADER_SIZE + spec.FRAME_END_SIZE  # type, channel, size ... frame-end


def method(channel, amqp_method):
    """One method frame (Connection.*, Channel.*, Confirm.Select ...)."""
    return frame.Method(channel, amqp_method).marshal()


def publish(channel, exchange, body, properties, frame_max, mandatory=True, routing_key=""):
    """Basic.Publish, its content header and the body split into frames of at most ``frame_max``."""
    published = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    pieces = [
        frame.Method(channel, published).marshal(),
        frame.Header(channel, len(body), properties).marshal(),
    ]
    limit = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), limit):
        pieces.append(frame.Body(channel, body[start : start + limit]).marshal())
    return b"".join(pieces)


def publish_all(channel, exchange, messages, frame_max):
    """``publish`` for each of ``messages`` (a batch to one exchange), the same bytes joined: the
    Basic.Publish frame, alike for all of them, is encoded once, and the content header of the
    properties a batch line can set is encoded here (``_batch_header``), a third of pika's cost."""
    method = frame.Method(
        channel, spec.Basic.Publish(exchange=exchange, routing_key="", mandatory=True)
    ).marshal()
    limit = frame_max - FRAME_OVERHEAD
    pieces = []
    for message in messages:
        body = message.body
        pieces.append(method)
        header = _batch_header(channel, len(body), message.properties)
        pieces.append(header or frame.Header(channel, len(body), message.properties).marshal())
        for start in range(0, len(body), limit):
            fragment = body[start : start + limit]
            pieces.append(BODY_FRAME.pack(spec.FRAME_BODY, channel, len(fragment)) + fragment + FRAME_END)
    return b"".join(pieces)


BODY_FRAME = struct.Struct(">BHI")  # type, channel, size; then the payload and the frame-end octet
FRAME_END = bytes([spec.FRAME_END])
HEADER_START = struct.Struct(">BHIHHQH")  # frame type, channel, size; class, weight, body size, flags
P = spec.BasicProperties
BATCH_PROPERTIES = {"content_type", "headers", "delivery_mode", "correlation_id", "message_id", "timestamp"}
OTHERS_OF = operator.itemgetter(*sorted(set(P().__dict__) - BATCH_PROPERTIES))  # what a batch line never sets
NONE_OF_THE_OTHERS = OTHERS_OF(P().__dict__)


def _batch_header(channel, body_size, properties):
    """The content header frame pika would make, for properties that set nothing but what a batch
    line sets (short strings of ASCII, as ``hutch.web.batch`` checks them); None for anything else.
    The fields go in AMQP's order, each flagged (pika.spec.BasicProperties.encode)."""
    if OTHERS_OF(properties.__dict__) != NONE_OF_THE_OTHERS:
        return None
    flags = 0
    pieces = []
    content_type = properties.content_type
    if content_type is not None:
        if not (content_type.isascii() and len(content_type) <= 255):
            return None
        flags |= P.FLAG_CONTENT_TYPE
        pieces += (bytes((len(content_type),)), content_type.encode("ascii"))
    if properties.headers is not None:
        flags |= P.FLAG_HEADERS
        data.encode_table(pieces, properties.headers)
    if properties.delivery_mode is not None:
        flags |= P.FLAG_DELIVERY_MODE
        pieces.append(bytes((properties.delivery_mode,)))
    correlation_id = properties.correlation_id
    if correlation_id is not None:
        if not (correlation_id.isascii() and len(correlation_id) <= 255):
            return None
        flags |= P.FLAG_CORRELATION_ID
        pieces += (bytes((len(correlation_id),)), correlation_id.encode("ascii"))
    message_id = properties.message_id
    if message_id is not None:
        if not (message_id.isascii() and len(message_id) <= 255):
            return None
        flags |= P.FLAG_MESSAGE_ID
        pieces += (bytes((len(message_id),)), message_id.encode("ascii"))
    if properties.timestamp is not None:
        flags |= P.FLAG_TIMESTAMP
        pieces.append(TIMESTAMP.pack(properties.timestamp))
    encoded = b"".join(pieces)
    start = HEADER_START.pack(spec.FRAME_HEADER, channel, 14 + len(encoded), P.INDEX, 0, body_size, flags)
    return start + encoded + FRAME_END


TIMESTAMP = struct.Struct(">Q")


class Decoder:
    """Bytes read from the socket in, whole frames out (a frame may span reads)."""

    def __init__(self):
        self._buffer = b""
        self.frames = collections.deque()  # decoded, not yet handled

    def feed(self, data):
        """Decode what ``data`` completes into ``frames`` (returned); keep the rest for the next read."""
        buffer = self._buffer + data if self._buffer else data
        frames = self.frames
        while buffer:
            consumed, decoded = frame.decode_frame(buffer)
            if not consumed:
                break
            frames.append(decoded)
            buffer = buffer[consumed:]
        self._buffer = buffer
        return frames
