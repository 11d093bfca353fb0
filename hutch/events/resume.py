"""Where a new event stream starts: pure decisions, no I/O.

Event ids are positions.  On an exchange with history they are the offsets
of its RabbitMQ stream (``"1234"``), the same for every event-server process
on every host, so ``Last-Event-ID: n`` resumes at offset ``n + 1`` exactly.
On a live-only exchange they are ``~{feed}.{seq}``: a sequence number within
one process's feed, which resumes only where that feed still runs.

Offsets rise but may skip numbers (the stream also stores entries that are
not messages), so a missing offset alone proves nothing: a ``gap`` is only
reported when the stream's first retained offset lies beyond the one asked
for, that is when retention dropped messages the client had not seen.
"""

import dataclasses
import re

MAX_OFFSET = 2**63 - 1
LIVE_ID = re.compile(r"~([0-9a-f]{1,32})\.([0-9]{1,19})")
MAX_ID_LENGTH = 300


def parse_offset(text):
    """The stream offset an id names, or None if it is not one."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    offset = int(text)
    return offset if offset <= MAX_OFFSET else None


def parse_live_id(text):
    """``(feed, seq)`` from a live-only id ``~feed.seq``, or None."""
    match = LIVE_ID.fullmatch(text or "")
    return (match.group(1), int(match.group(2))) if match else None


def live_id(feed, seq):
    return f"~{feed}.{seq}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a stream replays before it goes live.

    ``start``: the first position to send (None: nothing to replay);
    ``after``: live events at or below this position were sent already (or
    are older than the client wants) and are skipped; ``unknown``: the
    client's Last-Event-ID that names no position here (a ``gap`` says so).
    """

    start: int | None
    after: int
    unknown: str | None = None
    reason: str = "unknown_id"  # the ``gap`` event's reason when ``unknown`` is set


def beyond_end(last_event_id, tail):
    """True when ``Last-Event-ID`` is an offset past the newest one the stream holds (``tail``;
    None: the stream is empty): the stream was deleted and made anew, or the id is bogus."""
    offset = parse_offset(last_event_id)
    return offset is not None and (tail is None or offset > tail)


def plan_history(last_event_id, count, tail):
    """The plan on an exchange with history.

    ``tail`` is the newest offset the feed has seen (None while the stream is
    empty).  With a valid ``Last-Event-ID`` n: everything from n + 1.
    Without one (or with one that is no offset): the last ``count`` offsets.
    An offset beyond ``tail`` would skip every new message up to it: it is a
    ``reset`` (the history is replayed as for a new stream).  The caller
    first lets the feed catch up with the broker (``Feed.reach``), so an id
    another process has already sent is not taken for one.
    """
    reason = "unknown_id"
    if last_event_id:
        offset = parse_offset(last_event_id)
        if offset is not None and not beyond_end(last_event_id, tail):
            return Plan(start=offset + 1, after=offset)
        if offset is not None:
            reason = "reset"
    unknown = last_event_id or None
    if tail is None or count <= 0:
        return Plan(start=None, after=-1 if tail is None else tail, unknown=unknown, reason=reason)
    start = max(0, tail - count + 1)
    return Plan(start=start, after=start - 1, unknown=unknown, reason=reason)


def plan_live(last_event_id, feed, tail_seq):
    """The plan on a live-only exchange: resume within this feed, else go live (a ``gap`` if asked)."""
    if not last_event_id:
        return Plan(start=None, after=tail_seq)
    position = parse_live_id(last_event_id)
    if position is not None and position[0] == feed and position[1] <= tail_seq:
        return Plan(start=position[1] + 1, after=position[1])
    return Plan(start=None, after=tail_seq, unknown=last_event_id)


def split_replay(start, buffer_first, buffer_last):
    """How to replay from ``start`` given the feed's buffer ``[buffer_first, buffer_last]``.

    Returns ``(read_from_stream, from_buffer)``: the range ``(start, stop)``
    to read from the stream first (``stop`` excluded; None when the buffer
    covers ``start``), and the first buffered position to send after it.
    An empty buffer (``buffer_first`` None) reads nothing: the stream holds
    nothing the feed has not seen.
    """
    if buffer_first is None or start > buffer_last:
        return None, start
    if start >= buffer_first:
        return None, start
    return (start, buffer_first), buffer_first


def retention_dropped(requested, first_retained):
    """True when the stream's first retained offset is past the one a client asked for."""
    return first_retained is not None and first_retained > requested


def gap_event(reason, last_event_id, resumed_at):
    """The data of a ``gap`` event: why, after what, and where the stream picks up (None: live)."""
    return {"reason": reason, "last_event_id": last_event_id, "resumed_at": resumed_at}
