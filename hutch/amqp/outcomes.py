"""Turn what pika reports when a channel or connection closes into errors."""

import logging
import re

from hutch.errors import BrokerUnavailable, Forbidden, PreconditionFailed

NOT_FOUND = 404
ACCESS_REFUSED = 403
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
MISSING_EXCHANGE = re.compile(r"no exchange '(.*)' in vhost")
# "... inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'quorum' but current is
# 'classic'" (or "current is the value 'quorum' of type 'longstr'"; "none": a classic queue without it)
QUEUE_TYPE_CLASH = re.compile(
    r"inequivalent arg 'x-queue-type' .* but current is (?:none|(?:the value )?'([a-z]+)')"
)

# Channel closes the gateway expects and answers itself (a queue probed before it exists, an RPC to
# a missing exchange, an auto-delete exchange gone, a declaration clashing with what exists).
ANSWERED_CLOSES = (NOT_FOUND, RESOURCE_LOCKED, PRECONDITION_FAILED)

log = logging.getLogger(__name__)


def blocked(retry_after=None):
    """The 503 for a publish or call while the broker blocks the connection (a resource alarm)."""
    return BrokerUnavailable("The broker has blocked publishing (resource alarm).", retry_after)


def reply_code(reason):
    return getattr(reason, "reply_code", None)


def missing_exchange(reason):
    """The exchange a 404 channel close names, or None."""
    if reply_code(reason) != NOT_FOUND:
        return None
    match = MISSING_EXCHANGE.search(getattr(reason, "reply_text", "") or "")
    return match.group(1) if match else None


def existing_queue_type(reason):
    """The type of the existing queue a 406 on a typed declare names, or None for another 406."""
    if reply_code(reason) != PRECONDITION_FAILED:
        return None
    match = QUEUE_TYPE_CLASH.search(getattr(reason, "reply_text", "") or "")
    if match is None:
        return None
    return match.group(1) or "classic"


def error_for_close(reason):
    """The HutchError for a channel closed by the broker (or a lost connection)."""
    code = reply_code(reason)
    text = getattr(reason, "reply_text", "") or str(reason)
    if code in (PRECONDITION_FAILED, RESOURCE_LOCKED):
        return PreconditionFailed(f"The broker refused: {text}")
    if code == ACCESS_REFUSED:
        return Forbidden(f"The broker refused access: {text}")
    return BrokerUnavailable(f"The broker closed the channel: {text}")


class AnsweredChannelCloses(logging.Filter):
    """Keep pika's WARNING for a channel close the gateway answers out of a healthy log.

    pika logs every broker-initiated ``Channel.Close`` as a warning; the
    gateway turns the expected ones into HTTP answers (404 probes, 503
    no_responder, 409 precondition_failed), so they are logged at DEBUG
    instead.  Any other close (access refused, internal errors) keeps its
    warning.
    """

    def filter(self, record):
        message = record.msg if isinstance(record.msg, str) else ""
        closed = message.startswith("Received remote Channel.Close") and len(record.args or ()) > 1
        if closed and record.args[0] in ANSWERED_CLOSES:
            log.debug("channel closed by the broker (%s): %s", record.args[0], record.args[1])
            return False
        return True


def quiet_answered_closes():
    """Install the filter on pika's channel logger, once per process."""
    channel_log = logging.getLogger("pika.channel")
    if not any(isinstance(existing, AnsweredChannelCloses) for existing in channel_log.filters):
        channel_log.addFilter(AnsweredChannelCloses())
