"""Thousands of Server-Sent Events streams from a few client processes (asyncio protocols).

``ClientPool`` starts a few worker processes (one process cannot read 10,000 streams and still
time them fairly, one source address runs out of ports), each with its own event loop, loopback
source address (127.0.0.10, .11, ...) and raised RLIMIT_NOFILE, driven over a pipe.  A stream is
a bare ``asyncio.Protocol`` (the clients share the cores with the server they measure); a message
is recognised by a token in its body (``bench<run>n<number>e``), whatever the gateway's event ids,
and timed with ``time.monotonic()``: one clock for every process on the host.
"""

import asyncio
import collections
import contextlib
import multiprocessing
import re
import resource
import time
import urllib.parse

OPEN_CONCURRENCY = 64  # connections one worker is opening at once (Apache's listen backlog is 500)
HEADERS_TIMEOUT = 60.0  # seconds a stream may wait for its response headers
RETRY_STATUSES = {503}  # "too many streams in this process": opened again, as a browser would
FIRST_SOURCE = 10  # worker i connects from 127.0.0.(FIRST_SOURCE + i)
TAIL = 48  # bytes kept from one read to the next: a token cut in two is found whole


def raise_open_files_limit(wanted=1 << 17):
    """Soft and hard RLIMIT_NOFILE up to ``wanted`` (root may raise the hard limit); the limit now."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((max(hard, wanted), max(hard, wanted)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def token_pattern(run):
    return re.compile(rb"bench" + run.encode() + rb"n(\d+)e")


def token(run, number):
    return f"bench{run}n{number}e"


class Stream:
    """One open stream: the token numbers it has seen and when each arrived."""

    __slots__ = ("arrived", "closed_at")

    def __init__(self):
        self.arrived = {}  # number -> monotonic time
        self.closed_at = None


class StreamProtocol(asyncio.Protocol):
    """One ``GET`` of an event stream: its status, then the tokens in its (de-chunked) body."""

    def __init__(self, request, worker):
        self.request = request
        self.worker = worker
        self.stream = Stream()
        self.status = asyncio.get_running_loop().create_future()
        self.transport = None
        self.head = b""
        self.chunked = None  # None until the head is read
        self.pending = b""  # undecoded chunked bytes
        self.remaining = 0  # bytes of the current chunk still to come
        self.tail = b""
        self.counted = False  # among the worker's open streams

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.monotonic()
        if self.chunked is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end].lower(), self.head[end + 4 :]
            self.head = b""
            self.chunked = b"transfer-encoding: chunked" in head
            if not self.status.done():
                self.status.set_result(int(head.split(b" ", 2)[1]))
        if self.chunked:
            data = self.dechunk(data)
        if data:
            self.scan(data, now)

    def dechunk(self, data):
        """The payload bytes of ``data`` (HTTP/1.1 chunked transfer coding, across reads)."""
        buffer, payload = self.pending + data, []
        while buffer:
            if self.remaining:
                piece = buffer[: self.remaining]
                payload.append(piece)
                self.remaining -= len(piece)
                buffer = buffer[len(piece) :]
                continue
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            line, buffer = buffer[:line_end], buffer[line_end + 2 :]
            if line:  # an empty line is the CRLF that ends a chunk's data
                self.remaining = int(line.split(b";", 1)[0], 16)
        self.pending = buffer
        return b"".join(payload)

    def scan(self, data, now):
        text = self.tail + data
        arrived = self.stream.arrived
        for match in self.worker.pattern.finditer(text):
            number = int(match.group(1))
            if number not in arrived:
                arrived[number] = now
                self.worker.counts[number] += 1
        self.tail = text[-TAIL:]

    def connection_lost(self, exc):
        if not self.status.done():
            self.status.set_exception(ConnectionError(f"closed before the head: {exc}"))
        if self.counted and self.stream.closed_at is None:
            self.stream.closed_at = time.monotonic()
            self.worker.open_streams -= 1


class Worker:
    """The streams of one client process and the commands the parent sends it."""

    def __init__(self, url, authorization, run, source):
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
            f"Authorization: {authorization}\r\n\r\n"
        ).encode()
        self.pattern = token_pattern(run)
        self.source = source
        self.streams = []
        self.protocols = []
        self.counts = collections.Counter()  # number -> streams that have it
        self.open_streams = 0
        self.statuses = collections.Counter()
        self.errors = collections.Counter()

    async def open(self, count, attempts):
        """Open ``count`` streams; a 503 is tried again after a second, up to ``attempts`` times."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        opened = await asyncio.gather(*(self.open_one(gate, attempts) for _ in range(count)))
        return sum(opened)

    async def open_one(self, gate, attempts):
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            async with gate:
                try:
                    transport, protocol = await loop.create_connection(
                        lambda: StreamProtocol(self.request, self), *self.address, local_addr=(self.source, 0)
                    )
                    status = await asyncio.wait_for(protocol.status, HEADERS_TIMEOUT)
                except (OSError, TimeoutError) as error:
                    self.errors[type(error).__name__] += 1
                    return False
            self.statuses[status] += 1
            if status == 200:
                self.streams.append(protocol.stream)
                self.protocols.append(protocol)
                protocol.counted = True
                self.open_streams += 1
                return True
            transport.close()
            if status not in RETRY_STATUSES or attempt == attempts - 1:
                return False
            await asyncio.sleep(1.0)
        return False

    def have(self, number):
        """How many streams have message ``number``, and how many are still open."""
        return self.counts[number], self.open_streams

    def missing(self, numbers):
        """Deliveries of ``numbers`` not yet arrived on streams that are still open."""
        open_streams = [s for s in self.streams if s.closed_at is None]
        return sum(1 for s in open_streams for number in numbers if number not in s.arrived)

    def report(self, numbers):
        wanted = set(numbers)
        arrivals = collections.defaultdict(list)
        for stream in self.streams:
            for number, moment in stream.arrived.items():
                if number in wanted:
                    arrivals[number].append(moment)
        return {
            "accepted": len(self.streams),
            "closed": sum(s.closed_at is not None for s in self.streams),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "arrivals": dict(arrivals),
        }

    async def serve(self, connection):
        while True:
            command, *arguments = await asyncio.to_thread(connection.recv)
            if command == "open":
                count, attempts = arguments
                try:
                    opened = await asyncio.wait_for(self.open(count, attempts), HEADERS_TIMEOUT * attempts)
                except TimeoutError:
                    opened = len(self.streams)
                connection.send(opened)
            elif command != "close":  # have, missing, report
                connection.send(getattr(self, command)(*arguments))
            else:
                for protocol in self.protocols:
                    protocol.transport.close()
                await asyncio.sleep(0)
                connection.send(None)
                return


def work(connection, url, authorization, run, source):
    """A client process: serve the parent's commands until "close"."""
    raise_open_files_limit()
    asyncio.run(Worker(url, authorization, run, source).serve(connection))


class ClientPool:
    """``size`` client processes reading streams of ``url``; used as a context manager."""

    def __init__(self, url, authorization, run, size=4):
        self.run = run
        context = multiprocessing.get_context("spawn")
        self.connections = []
        self.processes = []
        for index in range(size):
            parent, child = context.Pipe()
            source = f"127.0.0.{FIRST_SOURCE + index}"
            process = context.Process(target=work, args=(child, url, authorization, run, source), daemon=True)
            process.start()
            self.connections.append(parent)
            self.processes.append(process)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    @property
    def pids(self):
        return [process.pid for process in self.processes]

    def ask(self, *command, timeout=None):
        for connection in self.connections:
            connection.send(command)
        answers = []
        for connection in self.connections:
            if timeout is not None and not connection.poll(timeout):
                raise RuntimeError(f"a client process did not answer {command[0]!r} within {timeout} s")
            answers.append(connection.recv())
        return answers

    def open(self, count, attempts=3):
        """Open ``count`` streams spread over the processes; how many were accepted (status 200)."""
        shares = [count // len(self.connections)] * len(self.connections)
        for index in range(count % len(self.connections)):
            shares[index] += 1
        for connection, share in zip(self.connections, shares, strict=True):
            connection.send(("open", share, attempts))
        return sum(connection.recv() for connection in self.connections)

    def have(self, number):
        answers = self.ask("have", number, timeout=60)
        return sum(has for has, _ in answers), sum(still for _, still in answers)

    def missing(self, numbers):
        return sum(self.ask("missing", list(numbers), timeout=60))

    def report(self, numbers):
        """Arrival times per message number over every stream, and the streams' fate."""
        answers = self.ask("report", list(numbers), timeout=120)
        merged = {key: sum(answer[key] for answer in answers) for key in ("accepted", "closed")}
        for key in ("statuses", "errors"):
            counts = sum((collections.Counter(answer[key]) for answer in answers), collections.Counter())
            merged[key] = {str(name): n for name, n in sorted(counts.items())}
        merged["arrivals"] = collections.defaultdict(list)
        for answer in answers:
            for number, moments in answer["arrivals"].items():
                merged["arrivals"][number].extend(moments)
        return merged

    def close(self):
        with contextlib.suppress(OSError, RuntimeError, EOFError):
            self.ask("close", timeout=30)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
