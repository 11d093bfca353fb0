"""events_history*: which exchanges keep history, and their stream's declaration."""

import pytest

from hutch.amqp.history import HistoryPolicy
from hutch.settings import ConfigurationError, parse_settings


def settings(**raw):
    return parse_settings({"auth": "off", "session.secret": "s" * 32, **raw})


def test_no_history_unless_the_ini_asks():
    assert not settings().history.keeps("scores")


def test_patterns_match_whole_names_and_star_runs_of_name_characters():
    history = settings(events_history="scores.* ops:alerts").history
    assert history.keeps("scores.nfl") and history.keeps("scores.") and history.keeps("ops:alerts")
    assert (
        not history.keeps("scores") and not history.keeps("xscores.nfl") and not history.keeps("ops:alerts2")
    )
    assert settings(events_history="*").history.keeps("anything")


def test_the_stream_queue_cannot_collide_with_a_consumer_queue():
    assert HistoryPolicy.queue("scores") == "hutch/history/scores"  # "/" is in no exchange or consumer name


def test_retention_arguments_come_from_the_ini():
    history = settings(
        events_history="*", events_history_max_age="2h", events_history_max_bytes="1000000",
        events_history_segment_bytes="100000", events_history_count="7",
    ).history  # fmt: skip
    assert history.count == 7
    assert history.arguments() == {
        "x-queue-type": "stream",
        "x-max-age": "2h",
        "x-max-length-bytes": 1_000_000,
        "x-stream-max-segment-size-bytes": 100_000,
    }
    # a segment is never larger than the whole stream may be
    assert (
        settings(events_history_max_bytes="5000").history.arguments()["x-stream-max-segment-size-bytes"]
        == 5000
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("events_history", "bad/pattern"), ("events_history_max_age", "1 hour"),
     ("events_history_max_age", "0h"), ("events_history_max_bytes", "0"), ("events_history_count", "-1"),
     ("events_history_count", "many")],
)  # fmt: skip
def test_bad_history_settings_stop_the_start(key, value):
    with pytest.raises(ConfigurationError, match="events_history"):
        settings(**{key: value})
