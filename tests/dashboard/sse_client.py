"""A small Server-Sent Events client over a real HTTP connection, for the stream tests and the bench.

Every read is bounded by a timeout, so a gateway bug fails a test instead
of hanging it.
"""

import dataclasses
import http.client
import json
import time
import urllib.parse


@dataclasses.dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comment: str | None = None  # a ": ..." line on its own (heartbeats)
    retry: int | None = None

    @property
    def json(self):
        return json.loads(self.data)


def parse_block(block):
    """One event from the lines between two blank lines (the SSE field rules)."""
    event, data, seen_field = Event(), [], False
    for line in block.split("\n"):
        if line.startswith(":"):
            event.comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        seen_field = True
        if name == "event":
            event.event = value
        elif name == "id":
            event.id = value
        elif name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            event.retry = int(value)
    event.data = "\n".join(data)
    if not seen_field and event.comment is None:
        return None
    if not data and event.comment is None:
        event.event = None  # no data: a browser dispatches nothing (a retry: or id: block)
    return event


class SseStream:
    """``GET url`` as an event stream; ``next_event``/``wait_for`` read it with deadlines."""

    def __init__(self, url, headers=None, timeout=10.0):
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.connection.request("GET", target, headers={"Accept": "text/event-stream", **(headers or {})})
        # held here: http.client lets go of the socket when the answer says "Connection: close"
        # (the front closes a stream's connection after it), the response still reads from it
        self.sock = self.connection.sock
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.buffer = ""
        self.ended = False
        self.cut = False
        self.received = []  # every event read so far, comments included

    def _read(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.response.read1(65536)
        except http.client.IncompleteRead:
            chunk, self.cut = b"", True  # the connection closed without ending the chunked body
        if not chunk:
            self.ended = True
        self.buffer += chunk.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def next_event(self, timeout=10.0):
        """The next event or comment; None when the server ended the stream; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                event = parse_block(block)
                if event is not None:
                    self.received.append(event)
                    return event
            if self.ended:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event within {timeout} s")
            try:
                self._read(remaining)
            except TimeoutError:
                raise TimeoutError(f"no event within {timeout} s") from None

    def wait_for(self, predicate, timeout=10.0):
        """Read until ``predicate(event)``; fail if the stream ends or the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(deadline - time.monotonic(), 0))
            if event is None:
                raise AssertionError("the stream ended before the awaited event")
            if predicate(event):
                return event

    def events(self, kind="message", count=1, timeout=10.0):
        """The next ``count`` events of type ``kind`` (others are skipped, but kept in ``received``)."""
        found = []
        while len(found) < count:
            found.append(self.wait_for(lambda event: event.event == kind and event.comment is None, timeout))
        return found

    def close(self):
        self.response.close()  # the response owns the connection once the answer said "close"
        self.sock.close()
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
