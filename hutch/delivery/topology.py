"""The queues of one push subscription, and why retries need no process's memory.

- work: the consumer queue ``{exchange}.{consumer}`` itself; delivery
  processes consume it as competing consumers, ``concurrency`` unacked each.
- retry: one queue per delay of the schedule, ``{work}.retry.{ms}``, with
  ``x-message-ttl`` = the delay and ``x-dead-letter-exchange`` "" /
  ``x-dead-letter-routing-key`` = the work queue.  A failed attempt is
  published there (confirmed) before the original is acked, with
  ``x-hutch-attempt`` raised by one; when the delay has passed RabbitMQ
  itself moves it back to the work queue.  Every message of a retry queue
  has the same TTL, so expiry at the head is in order.  With
  ``notify_queue_type = quorum`` they are quorum queues with at-least-once
  dead-lettering (``x-dead-letter-strategy``, which needs
  ``x-overflow = reject-publish``): no node loss drops a waiting message.
- dead: ``{work}.dead``, a durable *classic* queue.  Listing takes messages
  with ``basic.get`` without acking them, then closes the channel: a classic
  queue puts them back in their original places (a quorum queue does not: it
  puts returned messages ahead of the others, in another order).

A crash between the confirmed publish and the ack delivers the message
once more, with the same ``webhook-id``: at least once, never lost.
"""

ATTEMPT = "x-hutch-attempt"
ATTEMPTS = "x-hutch-attempts"
LAST_STATUS = "x-hutch-last-status"
LAST_ERROR = "x-hutch-last-error"
DEAD_AT = "x-hutch-dead-at"
# Headers of the tier or of RabbitMQ's dead-lettering, never passed on as X-Amqp-Header-*.
INTERNAL_PREFIXES = ("x-hutch-", "x-death", "x-first-death", "x-last-death", "x-delivery-count")


def delay_ms(seconds):
    return max(1, round(seconds * 1000))


def retry_queue(work_queue, seconds):
    return f"{work_queue}.retry.{delay_ms(seconds)}"


def dead_queue(work_queue):
    return f"{work_queue}.dead"


def retry_arguments(work_queue, seconds, queue_type):
    arguments = {
        "x-message-ttl": delay_ms(seconds),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": work_queue,
    }
    if queue_type == "quorum":
        arguments.update(
            {
                "x-queue-type": "quorum",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    else:
        arguments["x-queue-type"] = "classic"
    return arguments


DEAD_ARGUMENTS = {"x-queue-type": "classic"}


def user_headers(headers):
    """The message's own headers: what the publisher set, without the tier's and RabbitMQ's."""
    return {
        name: value
        for name, value in (headers or {}).items()
        if not str(name).lower().startswith(INTERNAL_PREFIXES)
    }
