"""hutch.amqp.wire: the direct publisher's frames, byte for byte what pika's own publish path sends."""

import pika
import pytest
from pika import frame, spec

from hutch.amqp import wire
from hutch.messages import Message

PROPERTIES = pika.BasicProperties(
    content_type="application/json",
    content_encoding="gzip",
    message_id="0123456789abcdef",
    correlation_id="corr-1",
    timestamp=1700000000,
    headers={"a": "b", "n": 7},
    delivery_mode=pika.DeliveryMode.Persistent,
)


def pika_publish_bytes(channel, exchange, body, properties, frame_max):
    """What pika's Connection._send_message writes for Channel.basic_publish(mandatory=True)."""
    connection = object.__new__(pika.SelectConnection)  # no I/O: only the encoder is used
    connection._body_max_length = frame_max - spec.FRAME_HEADER_SIZE - spec.FRAME_END_SIZE
    written = []
    connection._output_marshaled_frames = written.extend
    method = spec.Basic.Publish(exchange=exchange, routing_key="", mandatory=True)
    connection._send_message(channel, method, (properties, body))
    return b"".join(written)


@pytest.mark.parametrize("size", [0, 1, 4088, 4089, 3 * 4088 + 5, 100_000])
@pytest.mark.parametrize("properties", [PROPERTIES, pika.BasicProperties(message_id="m")])
def test_publish_is_pikas_bytes(size, properties):
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert wire.publish(2, "ex.name", body, properties, 4096) == pika_publish_bytes(
        2, "ex.name", body, properties, 4096
    )


def test_a_batch_is_each_publish_joined():
    messages = [
        Message(bytes(size), properties)
        for size in (0, 1, 4089, 9000)
        for properties in (PROPERTIES, pika.BasicProperties(message_id="m"))
    ]
    expected = b"".join(wire.publish(3, "ex.b", m.body, m.properties, 4096) for m in messages)
    assert wire.publish_all(3, "ex.b", messages, 4096) == expected


BATCH_LINE_PROPERTIES = [
    pika.BasicProperties(message_id="m", timestamp=1700000000),
    pika.BasicProperties(
        content_type="text/plain; charset=utf-8",
        message_id="k" * 255,
        correlation_id="c-1",
        timestamp=1700000000,
        headers={"Source": "lab", "x": "1"},
        delivery_mode=pika.DeliveryMode.Persistent,
    ),
    pika.BasicProperties(content_type="a/b", correlation_id="c", message_id="m", delivery_mode=1),
    pika.BasicProperties(headers={}, timestamp=0),
    pika.BasicProperties(),
]
NOT_A_BATCH_LINES = [
    PROPERTIES,  # content_encoding
    pika.BasicProperties(message_id="m", priority=3),
    pika.BasicProperties(message_id="m", app_id="x"),
    pika.BasicProperties(message_id="caf\u00e9"),
]


@pytest.mark.parametrize("properties", BATCH_LINE_PROPERTIES + NOT_A_BATCH_LINES)
def test_a_batchs_content_headers_are_pikas(properties):
    """A batch line's header is encoded by hutch.amqp.wire itself; the bytes must be pika's."""
    messages = [Message(b"x" * 300, properties), Message(b"", properties)]
    assert wire.publish_all(5, "ex.b", messages, 131072) == b"".join(
        pika_publish_bytes(5, "ex.b", m.body, m.properties, 131072) for m in messages
    )


def test_the_short_way_is_taken_only_for_a_batch_lines_properties():
    assert all(wire._batch_header(1, 10, p) is not None for p in BATCH_LINE_PROPERTIES)
    assert all(wire._batch_header(1, 10, p) is None for p in NOT_A_BATCH_LINES)


def test_body_frames_never_exceed_frame_max():
    data = wire.publish(1, "x", b"y" * 10_000, PROPERTIES, 4096)
    frames = list(wire.Decoder().feed(data))
    assert [type(f) for f in frames[:2]] == [frame.Method, frame.Header]
    bodies = frames[2:]
    assert [len(f.fragment) for f in bodies] == [4088, 4088, 10_000 - 2 * 4088]
    assert all(len(f.marshal()) <= 4096 for f in bodies)
    assert b"".join(f.fragment for f in bodies) == b"y" * 10_000


def test_method_frames_are_pikas():
    select = spec.Confirm.Select()
    assert wire.method(3, select) == frame.Method(3, select).marshal()
    assert bytes([8, 0, 0, 0, 0, 0, 0, 0xCE]) == wire.HEARTBEAT
    assert wire.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"


def test_decoder_reassembles_frames_split_across_reads():
    stream = (
        wire.method(1, spec.Basic.Ack(delivery_tag=5, multiple=True))
        + wire.HEARTBEAT
        + wire.publish(1, "ex", b"z" * 5000, PROPERTIES, 4096)
    )
    decoder = wire.Decoder()
    for index in range(len(stream)):  # one byte per read
        decoder.feed(stream[index : index + 1])
    frames = list(decoder.frames)
    assert frames[0].method.delivery_tag == 5 and frames[0].method.multiple
    assert isinstance(frames[1], frame.Heartbeat)
    assert frames[2].method.exchange == "ex" and frames[2].method.mandatory
    assert frames[3].body_size == 5000 and frames[3].properties.message_id == PROPERTIES.message_id
    assert b"".join(f.fragment for f in frames[4:]) == b"z" * 5000


def test_decoder_rejects_a_corrupt_frame_end():
    data = bytearray(wire.method(1, spec.Basic.Ack(delivery_tag=1)))
    data[-1] = 0
    with pytest.raises(pika.exceptions.InvalidFrameError):
        wire.Decoder().feed(bytes(data))
