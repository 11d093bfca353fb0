"""HTTP clients that hammer the gateway while a test breaks the broker.

Each client thread has its own ``requests.Session`` and sends requests back
to back until stopped, recording every answer (or the exception where an
answer should have been) with its start time and duration, so a test can
tell what happened before, during and after a fault.
"""

import contextlib
import dataclasses
import threading
import time

import requests


@dataclasses.dataclass(frozen=True)
class Request:
    kind: str
    key: str
    url: str
    headers: dict
    body: bytes


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: str
    key: str
    started: float  # time.monotonic()
    duration: float
    status: int | None  # None: no HTTP answer at all (see error)
    retry_after: str | None
    body: bytes
    error: str | None
    replayed: bool = False  # answered Idempotent-Replayed: true

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300


class Worker:
    """What a request factory knows about its thread: its index, a counter, its last outcome."""

    def __init__(self, index):
        self.index = index
        self.counter = 0
        self.last = None

    def next_number(self):
        self.counter += 1
        return self.counter


class Load:
    """``threads`` clients sending ``factory(worker)``'s requests until ``stop``.

    ``timeout`` bounds every request: a gateway that hangs shows up as an
    outcome with an error, never as a hung test.  After a failed answer a
    client pauses ``pause_after_failure`` before it goes on.
    """

    def __init__(self, factory, threads=4, timeout=15.0, pause_after_failure=0.05):
        self.factory = factory
        self.timeout = timeout
        self.pause_after_failure = pause_after_failure
        self.outcomes = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(Worker(i),), name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        """Stop sending and wait for the requests in flight (each bounded by ``timeout``)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread is stuck"
        return sorted(self.outcomes, key=lambda outcome: outcome.started)

    def _run(self, worker):
        with requests.Session() as session:
            while not self._stopping.is_set():
                outcome = send(session, self.factory(worker), self.timeout)
                worker.last = outcome
                with self._lock:
                    self.outcomes.append(outcome)
                if not outcome.ok:
                    self._stopping.wait(self.pause_after_failure)


class Arrivals:
    """Requests that arrive every ``interval`` on threads of their own, answered or not.

    A closed loop of clients can all be left waiting at once (each on a call
    whose responder the broker has blocked), and then nothing new reaches the
    gateway; arrivals keep coming, as real traffic does.
    """

    def __init__(self, factory, interval=0.1, timeout=15.0, index=100):
        self.factory = factory
        self.interval = interval
        self.timeout = timeout
        self.worker = Worker(index)
        self.outcomes = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._senders = []
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(self.interval + 5)
        for sender in self._senders:
            sender.join(self.timeout + 5)
        assert not any(sender.is_alive() for sender in self._senders), "an arrival is stuck"
        return sorted(self.outcomes, key=lambda outcome: outcome.started)

    def _run(self):
        while not self._stopping.wait(self.interval):
            sender = threading.Thread(target=self._send, args=(self.factory(self.worker),), daemon=True)
            self._senders.append(sender)
            sender.start()

    def _send(self, request):
        with requests.Session() as session:
            outcome = send(session, request, self.timeout)
        with self._lock:
            self.outcomes.append(outcome)


def send(session, request, timeout):
    started = time.monotonic()
    try:
        response = session.post(request.url, data=request.body, headers=request.headers, timeout=timeout)
    except requests.RequestException as exc:
        return Outcome(
            request.kind, request.key, started, time.monotonic() - started, None, None, b"", repr(exc)
        )
    return Outcome(
        request.kind,
        request.key,
        started,
        time.monotonic() - started,
        response.status_code,
        response.headers.get("Retry-After"),
        response.content,
        None,
        response.headers.get("Idempotent-Replayed") == "true",
    )


def notify_factory(base_url, exchange, run_id):
    """Notify publishes with our own message ids; a failed one is retried with the same id.

    Retrying with the same ``Idempotency-Key`` is what a careful client does
    after a 503, and it is what makes duplicates countable.
    """

    def make(worker):
        if worker.last is not None and not worker.last.ok:
            key = worker.last.key
        else:
            key = f"{run_id}-{worker.index}-{worker.next_number()}"
        headers = {"Idempotency-Key": key, "Content-Type": "text/plain"}
        return Request("notify", key, f"{base_url}/notify/{exchange}", headers, key.encode())

    return make


def repeating_notify_factory(base_url, exchange, run_id, repeat_every=3):
    """``notify_factory``, and every ``repeat_every``-th 2xx is sent once more with its key.

    The repeat is a client that lost the 2xx (a timeout, a dropped connection)
    and retries: with idempotent retries on it must be replayed, not stored again.
    """
    fresh = notify_factory(base_url, exchange, run_id)

    def make(worker):
        last = worker.last
        if last is not None and last.ok and not last.replayed and worker.counter % repeat_every == 0:
            headers = {"Idempotency-Key": last.key, "Content-Type": "text/plain"}
            return Request("repeat", last.key, f"{base_url}/notify/{exchange}", headers, last.key.encode())
        return fresh(worker)

    return make


def broadcast_factory(base_url, exchange, run_id):
    def make(worker):
        key = f"{run_id}-b{worker.index}-{worker.next_number()}"
        headers = {"Idempotency-Key": key, "Content-Type": "text/plain"}
        return Request("broadcast", key, f"{base_url}/broadcast/{exchange}", headers, key.encode())

    return make


def rpc_factory(base_url, exchange, routing_key, run_id, timeout):
    def make(worker):
        key = f"{run_id}-r{worker.index}-{worker.next_number()}"
        headers = {"Content-Type": "text/plain", "X-Timeout": str(timeout)}
        return Request("rpc", key, f"{base_url}/rpc/{exchange}/{routing_key}", headers, key.encode())

    return make


def alternate(*factories):
    """Spread the threads of one ``Load`` over several factories (thread i uses factory i % n)."""

    def make(worker):
        return factories[worker.index % len(factories)](worker)

    return make


def unanswered(outcomes):
    """Requests that got no HTTP answer (a refused connection, a reset, a client timeout)."""
    return [outcome for outcome in outcomes if outcome.status is None]


def without_retry_after(outcomes):
    """503 answers that do not tell the client when to retry."""
    return [outcome for outcome in outcomes if outcome.status == 503 and not outcome.retry_after]


def summary(outcomes):
    """Status -> count, with ``None`` for requests that got no HTTP answer."""
    counts = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0)))


def wait_until_healthy(url, timeout):
    """Seconds until ``GET /health`` answers 200 (fresh connection each try), or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=3).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    return None
