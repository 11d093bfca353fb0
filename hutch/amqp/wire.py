"""AMQP 0-9-1 frames for the direct publisher, through pika's own codec.

pika.spec and pika.frame are plain functions of their arguments (no I/O,
no connection state), so the direct publisher encodes and decodes with
them: the bytes on the wire are exactly what a pika connection would send.
Encoding a publish costs a few microseconds, a small part of a request; a
hand-written encoder would save little and be one more thing to keep right.
"""

import collections
import struct

from pika import frame, spec

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
    Basic.Publish frame, alike for all of them, is encoded once."""
    method = frame.Method(
        channel, spec.Basic.Publish(exchange=exchange, routing_key="", mandatory=True)
    ).marshal()
    limit = frame_max - FRAME_OVERHEAD
    pieces = []
    for message in messages:
        body = message.body
        pieces.append(method)
        pieces.append(frame.Header(channel, len(body), message.properties).marshal())
        for start in range(0, len(body), limit):
            fragment = body[start : start + limit]
            pieces.append(BODY_FRAME.pack(spec.FRAME_BODY, channel, len(fragment)) + fragment + FRAME_END)
    return b"".join(pieces)


BODY_FRAME = struct.Struct(">BHI")  # type, channel, size; then the payload and the frame-end octet
FRAME_END = bytes([spec.FRAME_END])


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
