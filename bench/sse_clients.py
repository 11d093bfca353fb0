"""Thousands of Server-Sent Events streams from a few client processes (asyncio + aiohttp).

One process cannot read 10,000 streams and still time them fairly, and one
source address runs out of ephemeral ports, so ``ClientPool`` starts a few
worker processes, each with its own event loop, its own loopback source
address (127.0.0.10, .11, ...) and a raised RLIMIT_NOFILE.  The parent
drives them over a pipe: open N streams, ask how many have a message,
collect the arrival times.

A message is recognised on a stream by a token in its body
(``bench<run>n<number>e``), not by the event id, so the same client
measures any gateway whatever its ids are (message ids, buffer positions,
stream offsets).  Arrival times are ``time.monotonic()``: CLOCK_MONOTONIC is
one clock for every process on the host, so the parent compares them with
when it published.
"""

import asyncio
import collections
import contextlib
import multiprocessing
import re
import resource
import time

import aiohttp

OPEN_CONCURRENCY = 64  # connections one worker is opening at once (Apache's listen backlog is 500)
HEADERS_TIMEOUT = 60.0  # seconds a stream may wait for its response headers
RETRY_STATUSES = {503}  # "too many streams in this process": opened again, as a browser would
FIRST_SOURCE = 10  # worker i connects from 127.0.0.(FIRST_SOURCE + i)


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


class Worker:
    """The streams of one client process and the commands the parent sends it."""

    def __init__(self, url, authorization, run, source):
        self.url = url
        self.headers = {"Accept": "text/event-stream", "Authorization": authorization}
        self.pattern = token_pattern(run)
        self.source = source
        self.streams = []
        self.statuses = collections.Counter()
        self.errors = collections.Counter()
        self.tasks = set()
        self.session = None

    async def open(self, count, attempts):
        """Open ``count`` streams; a 503 is tried again after a second, up to ``attempts`` times."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        opened = await asyncio.gather(*(self.open_one(gate, attempts) for _ in range(count)))
        return sum(opened)

    async def open_one(self, gate, attempts):
        for attempt in range(attempts):
            async with gate:
                try:
                    response = await self.session.get(self.url, headers=self.headers)
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    self.errors[type(error).__name__] += 1
                    return False
            self.statuses[response.status] += 1
            if response.status == 200:
                stream = Stream()
                self.streams.append(stream)
                task = asyncio.get_running_loop().create_task(self.read(response, stream))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return True
            response.release()
            if response.status not in RETRY_STATUSES or attempt == attempts - 1:
                return False
            await asyncio.sleep(1.0)
        return False

    async def read(self, response, stream):
        tail = b""
        try:
            async for chunk in response.content.iter_any():
                now = time.monotonic()
                data = tail + chunk
                for match in self.pattern.finditer(data):
                    number = int(match.group(1))
                    if number not in stream.arrived:
                        stream.arrived[number] = now
                tail = data[-48:]  # a token cut in two by the chunking is found in the next chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self.errors[f"read {type(error).__name__}"] += 1
        finally:
            stream.closed_at = time.monotonic()
            response.release()

    def have(self, number):
        """How many streams have message ``number``, and how many are still open."""
        return sum(number in s.arrived for s in self.streams), sum(s.closed_at is None for s in self.streams)

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
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
        connector = aiohttp.TCPConnector(limit=0, local_addr=(self.source, 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            while True:
                command, *arguments = await asyncio.to_thread(connection.recv)
                if command == "open":
                    count, attempts = arguments
                    try:
                        opened = await asyncio.wait_for(
                            self.open(count, attempts), HEADERS_TIMEOUT * attempts
                        )
                    except TimeoutError:
                        opened = len(self.streams)
                    connection.send(opened)
                elif command == "have":
                    connection.send(self.have(*arguments))
                elif command == "missing":
                    connection.send(self.missing(*arguments))
                elif command == "report":
                    connection.send(self.report(*arguments))
                elif command == "close":
                    for task in list(self.tasks):
                        task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.gather(*self.tasks, return_exceptions=True)
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
        merged = {
            "accepted": 0,
            "closed": 0,
            "statuses": collections.Counter(),
            "errors": collections.Counter(),
        }
        arrivals = collections.defaultdict(list)
        for answer in self.ask("report", list(numbers), timeout=120):
            merged["accepted"] += answer["accepted"]
            merged["closed"] += answer["closed"]
            merged["statuses"].update(answer["statuses"])
            merged["errors"].update(answer["errors"])
            for number, moments in answer["arrivals"].items():
                arrivals[number].extend(moments)
        merged["statuses"] = {str(status): n for status, n in sorted(merged["statuses"].items())}
        merged["errors"] = dict(merged["errors"])
        merged["arrivals"] = arrivals
        return merged

    def close(self):
        with contextlib.suppress(OSError, RuntimeError, EOFError):
            self.ask("close", timeout=30)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
