"""Which broadcast exchanges keep history, and the RabbitMQ stream that keeps it.

A broadcast exchange whose name matches one of ``events_history``'s patterns
gets a stream queue bound to it as soon as anyone declares the exchange (the
gateway on a broadcast, the event server for its first viewer).  The stream
holds the exchange's messages for ``events_history_max_age`` and at most
``events_history_max_bytes``; event ids are its offsets, so any event-server
process can resume any client exactly.

The queue's name contains ``/``, which no exchange or consumer name may, so
it can never collide with a notify queue ``{exchange}.{consumer}``.  Being
bound forever, it also keeps the auto-delete broadcast exchange alive and
makes every broadcast to it ``routed``.
"""

import dataclasses
import re

QUEUE_PREFIX = "hutch/history/"
AGE = re.compile(r"[1-9][0-9]*[YMDhms]")  # RabbitMQ's x-max-age units: years ... seconds


def compile_patterns(text):
    """``events_history`` (space-separated patterns, ``*`` = any run of name characters) as one regex."""
    patterns = text.split()
    if not patterns:
        return None
    for pattern in patterns:
        if not re.fullmatch(r"[A-Za-z0-9_.:*-]{1,127}", pattern):
            raise ValueError(f"pattern {pattern!r}: use name characters and '*'")
    alternatives = "|".join(re.escape(pattern).replace(r"\*", "[A-Za-z0-9_.:-]*") for pattern in patterns)
    return re.compile(f"(?:{alternatives})")


def max_age(text):
    """A retention age as RabbitMQ takes it (``90s``, ``30m``, ``24h``, ``7D``)."""
    text = text.strip()
    if not AGE.fullmatch(text):
        raise ValueError(f"{text!r} is not an age such as 30m, 24h or 7D (units Y M D h m s)")
    return text


@dataclasses.dataclass(frozen=True)
class HistoryPolicy:
    """The ``events_history*`` settings: which exchanges, how much is kept, how much is replayed."""

    patterns: re.Pattern | None = None
    count: int = 50
    max_age: str = "24h"
    max_bytes: int = 100 * 1024 * 1024
    segment_bytes: int = 8 * 1024 * 1024

    def keeps(self, exchange):
        return self.patterns is not None and self.patterns.fullmatch(exchange) is not None

    @staticmethod
    def queue(exchange):
        return QUEUE_PREFIX + exchange

    def arguments(self):
        """The stream's declare arguments; retention drops whole segments, so they are kept small."""
        return {
            "x-queue-type": "stream",
            "x-max-age": self.max_age,
            "x-max-length-bytes": self.max_bytes,
            "x-stream-max-segment-size-bytes": min(self.segment_bytes, self.max_bytes),
        }
