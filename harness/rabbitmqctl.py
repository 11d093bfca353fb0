"""``rabbitmqctl``'s view of RabbitMQ: which queues the gateway bound (its queues are
server-named, so only the broker can tell).  Publishing, declaring and cleaning up go
through ``harness.amqp``."""

import subprocess
import time


def rabbitmqctl(*arguments):
    done = subprocess.run(
        ["rabbitmqctl", "-q", "--no-table-headers", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def bound_queues(exchange):
    """The queues bound to ``exchange`` right now."""
    rows = rabbitmqctl("list_bindings", "source_name", "destination_name", "destination_kind")
    return {row[1] for row in rows if len(row) == 3 and row[0] == exchange and row[2] == "queue"}


def queue_facts(names):
    """name -> {consumers, exclusive, auto_delete} for the named queues."""
    rows = rabbitmqctl("list_queues", "name", "consumers", "exclusive", "auto_delete")
    return {
        row[0]: {"consumers": int(row[1]), "exclusive": row[2] == "true", "auto_delete": row[3] == "true"}
        for row in rows
        if row[0] in names
    }


def wait_for_bindings(exchange, condition, timeout=30.0):
    """Poll the broker until ``condition(bound queues)``; return them, or fail with what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        queues = bound_queues(exchange)
        if condition(queues):
            return queues
        if time.monotonic() > deadline:
            raise AssertionError(f"bindings of {exchange!r} after {timeout} s: {sorted(queues)}")
        time.sleep(0.3)
