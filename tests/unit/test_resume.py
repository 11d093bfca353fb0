"""Where an event stream starts: the pure decisions of hutch.events.resume."""

import pytest

from hutch.events import resume


@pytest.mark.parametrize(
    ("text", "offset"),
    [("0", 0), ("1234", 1234), (str(2**63 - 1), 2**63 - 1), ("", None), ("-1", None), ("1.5", None),
     (" 7", None), ("٣", None), (str(2**63), None), ("9" * 20, None), ("~ab.3", None), ("abc", None)],
)  # fmt: skip
def test_only_decimal_offsets_are_positions(text, offset):
    assert resume.parse_offset(text) == offset


def test_a_fresh_stream_replays_the_last_count_offsets_oldest_first():
    assert resume.plan_history("", 50, 1000) == resume.Plan(start=951, after=950)
    assert resume.plan_history("", 50, 10) == resume.Plan(start=0, after=-1)  # fewer than 50 kept
    assert resume.plan_history("", 0, 10) == resume.Plan(start=None, after=10)  # history off: live
    assert resume.plan_history("", 50, None) == resume.Plan(start=None, after=-1)  # empty stream


def test_last_event_id_resumes_right_after_it():
    assert resume.plan_history("41", 50, 1000) == resume.Plan(start=42, after=41)
    assert resume.plan_history("999", 50, 1000) == resume.Plan(start=1000, after=999)
    assert resume.plan_history("1000", 50, 1000) == resume.Plan(start=1001, after=1000)


def test_an_offset_beyond_the_end_is_a_reset_and_the_history_replayed():
    """Skipping every new message up to a bogus or pre-reset offset would lose them silently."""
    assert resume.plan_history("2000", 50, 1000) == resume.Plan(
        start=951, after=950, unknown="2000", reason="reset"
    )
    assert resume.plan_history("5", 50, 2) == resume.Plan(start=0, after=-1, unknown="5", reason="reset")
    # the stream was made anew and is still empty: what comes next is delivered
    assert resume.plan_history("5", 50, None) == resume.Plan(
        start=None, after=-1, unknown="5", reason="reset"
    )
    assert resume.beyond_end("1001", 1000) and resume.beyond_end("0", None)
    assert not resume.beyond_end("1000", 1000) and not resume.beyond_end("x", None)


def test_an_id_that_is_no_offset_is_reported_and_the_history_replayed():
    plan = resume.plan_history("0b6e3c6f4c0a", 50, 1000)
    assert plan == resume.Plan(start=951, after=950, unknown="0b6e3c6f4c0a")


def test_live_only_streams_resume_only_within_the_same_feed():
    assert resume.plan_live("", "ab12", 7) == resume.Plan(start=None, after=7)
    assert resume.plan_live("~ab12.3", "ab12", 7) == resume.Plan(start=4, after=3)
    assert resume.plan_live("~ab12.7", "ab12", 7) == resume.Plan(start=8, after=7)
    assert resume.plan_live("~ffff.3", "ab12", 7) == resume.Plan(start=None, after=7, unknown="~ffff.3")
    assert resume.plan_live("~ab12.9", "ab12", 7).unknown == "~ab12.9"  # not a position this feed had
    assert resume.plan_live("12", "ab12", 7).unknown == "12"
    assert resume.live_id("ab12", 3) == "~ab12.3"


def test_the_buffer_serves_what_it_holds_and_the_stream_the_rest():
    assert resume.split_replay(950, 900, 1000) == (None, 950)  # all buffered
    assert resume.split_replay(800, 900, 1000) == ((800, 900), 900)  # older part read from the stream
    assert resume.split_replay(1001, 900, 1000) == (None, 1001)  # nothing new yet
    assert resume.split_replay(5, None, -1) == (None, 5)  # empty feed: nothing to read


def test_a_gap_only_when_retention_passed_the_requested_offset():
    assert resume.retention_dropped(42, 100)
    assert not resume.retention_dropped(42, 42)
    assert not resume.retention_dropped(42, 0)
    assert not resume.retention_dropped(42, None)  # unknown: never claim a loss
    assert resume.gap_event("retention", "41", "100") == {
        "reason": "retention",
        "last_event_id": "41",
        "resumed_at": "100",
    }
