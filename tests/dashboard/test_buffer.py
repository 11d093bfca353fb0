"""Where a stream resumes: the per-exchange buffer, ids, cursors and gaps (no broker involved;
the feed's listener is called the way the AMQP I/O thread calls it)."""

import time

import pika
import pytest

from hutch.streams import EventBuffer, ExchangeFeed, StreamHub, parse_cursor

from .conftest import stack_settings


def test_the_buffer_keeps_the_newest_and_counts_what_it_dropped():
    buffer = EventBuffer(3)
    for number in range(1, 6):
        buffer.append(f"m{number}", float(number), b"")
    assert [event.id for event in buffer.events] == ["m3", "m4", "m5"]
    assert buffer.after_seq(3) == (0, list(buffer.events)[1:])
    assert buffer.after_seq(5) == (0, [])
    missed, events = buffer.after_seq(0)
    assert missed == 2 and [event.id for event in events] == ["m3", "m4", "m5"]


@pytest.fixture
def feed():
    hub = StreamHub(broker=None, settings=stack_settings(events_buffer="5"))
    return ExchangeFeed(hub, "scores")


def deliver(feed, *ids):
    for message_id in ids:
        feed.on_message("scores", pika.BasicProperties(message_id=message_id), b"1")


def ids(events):
    return [event.id for event in events]


def test_a_fresh_stream_starts_live(feed):
    deliver(feed, "m1")
    start = feed.start("")
    assert (start.gap, start.events, start.seq) == (None, [], 1)
    assert parse_cursor(start.cursor)[:2] == (feed.epoch, 1)


def test_a_known_id_resumes_right_after_it(feed):
    deliver(feed, "m1", "m2", "m3")
    start = feed.start("m1")
    assert start.gap is None and ids(start.events) == ["m2", "m3"]


def test_an_id_the_buffer_no_longer_holds_is_a_gap_then_everything_buffered(feed):
    deliver(feed, *[f"m{number}" for number in range(7)])
    start = feed.start("m0")
    assert start.gap["reason"] == "unknown_id"
    assert start.gap["missed"] is None and start.gap["resent"] == 5
    assert ids(start.events) == ["m2", "m3", "m4", "m5", "m6"]


def test_a_cursor_of_this_feed_is_exact_and_counts_what_overflowed(feed):
    cursor = feed.start("").cursor
    deliver(feed, "m1", "m2")
    start = feed.start(cursor)
    assert start.gap is None and ids(start.events) == ["m1", "m2"]
    deliver(feed, *[f"n{number}" for number in range(6)])
    start = feed.start(cursor)
    assert start.gap["reason"] == "overflow" and start.gap["missed"] == 3


def test_a_cursor_of_another_process_resumes_by_time_and_says_when_it_cannot_vouch(feed):
    feed.since -= 60  # this process has consumed the exchange for a minute
    deliver(feed, "m1")
    before = int((time.time() - 5) * 1000)
    start = feed.start(f"~otherprocess.99.{before}")
    assert start.gap is None and ids(start.events) == ["m1"]
    feed.since = time.time()  # this process has only just started consuming
    start = feed.start(f"~otherprocess.99.{before}")
    assert start.gap["reason"] == "not_buffered" and ids(start.events) == ["m1"]


def test_a_malformed_cursor_is_an_unknown_id(feed):
    deliver(feed, "m1")
    start = feed.start("~garbage")
    assert start.gap["reason"] == "unknown_id" and ids(start.events) == ["m1"]
