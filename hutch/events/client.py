"""One open stream as its feed sees it: the events it is owed, and the bound on what may wait for it.

An ``Event`` is rendered once per feed and framed once as an HTTP/1.1
chunk for every stream.  A ``Client`` writes it straight to its stream's
socket; a stream that falls more than ``events_max_pending`` bytes behind (a
browser that stopped reading) is cut off, and resumes exactly when it
reconnects.
"""

import asyncio
import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    position: int
    frame: bytes
    chunk: bytes = b""  # the frame as one HTTP/1.1 chunk, made once for every stream

    def __post_init__(self):
        if not self.chunk:
            object.__setattr__(self, "chunk", as_chunk(self.frame))


def as_chunk(data):
    """``data`` in chunked transfer encoding, as aiohttp frames what a handler writes."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Client:
    """One open stream as the feed sees it.

    Once its replay is written, ``push`` writes each event's ready-made chunk
    straight to the stream's transport: one ``send`` per stream and
    broadcast, no queue and no task wake-up.  The transport's own buffer is
    the stream's backlog: a stream with more than ``max_pending`` bytes
    waiting there (a browser that stopped reading) is cut off instead of
    slowing the others, and resumes exactly when it reconnects.  Until then
    (the replay is still being written) events wait in ``pending``, bounded
    the same way.  The stream's task only waits for its end (cut, lifetime,
    shutdown): one future per stream, no timer (heartbeats and lifetimes are
    the tier's ticker's job).
    """

    __slots__ = (
        "after",
        "chunked",
        "cut",
        "deadline",
        "ending",
        "last_write",
        "max_pending",
        "pending",
        "pending_bytes",
        "transport",
        "waiter",
    )

    def __init__(self, after, max_pending, deadline):
        self.after = after  # positions at or below this one were sent (or are not wanted)
        self.max_pending = max_pending
        self.deadline = deadline  # loop time at which the stream ends with ``closing``
        self.pending = []
        self.pending_bytes = 0
        self.cut = False
        self.ending = None  # why the stream is to end (``max_lifetime``, ``shutdown``)
        self.last_write = 0.0  # loop time of the last frame that was not an event (events: the feed's)
        self.waiter = None
        self.transport = None  # set once the replay is written: from then on events go straight to it
        self.chunked = True

    def push(self, event):
        if event.position <= self.after:
            return
        self.after = event.position
        transport = self.transport
        if transport is None:
            self._hold(event.frame)
            return
        if self.cut or self.ending:
            return
        if transport.is_closing():
            self.end("disconnected")  # the browser went away: its task ends and detaches it
            return
        if transport.get_write_buffer_size() > self.max_pending:
            self._cut()
            return
        transport.write(event.chunk if self.chunked else event.frame)

    def say(self, frame):
        """A frame outside the positions (a ``gap``, a heartbeat)."""
        transport = self.transport
        if transport is None:
            self._hold(frame)
        elif not (self.cut or transport.is_closing()):
            transport.write(as_chunk(frame) if self.chunked else frame)

    def _hold(self, frame):
        if self.cut:
            return
        self.pending.append(frame)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self.max_pending:
            self.pending.clear()
            self._cut()

    def _cut(self):
        self.cut = True  # too slow: its task ends the stream; the browser resumes from its last id
        self._wake()

    def _wake(self):
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, reason):
        if self.ending is None:
            self.ending = reason
        self._wake()

    def take(self):
        frames, self.pending, self.pending_bytes = self.pending, [], 0
        return b"".join(frames)

    def go_live(self, transport, chunked):
        """Write events straight to ``transport`` from now on (call with ``pending`` empty)."""
        self.transport = transport
        self.chunked = chunked

    async def wait(self):
        """Until the stream is to end: cut off, or a reason to end."""
        if self.cut or self.ending:
            return
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
