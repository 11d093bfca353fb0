"""Reading a queue over AMQP for the event tier: one ``basic.consume``, and what the broker's answers mean.

A ``Consumer`` reads a queue's deliveries in order and notices when its
channel closes or the broker cancels it; ``offset_of`` and ``is_request`` read
a delivery; ``broker_error`` turns a refused declaration into the gateway's
error.  The feeds (``feeds``) and the history reads (``history``) consume
through it.
"""

import asyncio
import contextlib

import aio_pika
import aiormq

from hutch.errors import BrokerUnavailable, Forbidden, PreconditionFailed

PREFETCH = 500  # stream consumers must set one; deliveries are acked as they are fanned out
ACCESS_REFUSED, PRECONDITION_FAILED = 403, 406
AMQP_ERRORS = (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, ConnectionError, OSError)


class ConsumerCancelled(ConnectionError):
    """The broker ended a consumer on a live connection: its queue was deleted, or its stream member moved."""


class Consumer:
    """``basic.consume`` into a local queue, read in delivery order.

    aio-pika's own queue iterator rejects the deliveries it still holds when
    it closes, and a stream queue answers a reject by closing the whole
    connection (NOT_IMPLEMENTED); this one just closes its channel, which a
    stream takes as the end of the read.
    """

    def __init__(self, channel, queue, arguments=None, no_ack=False):
        self.channel = channel
        self.queue = queue
        self.arguments = arguments or {}
        self.no_ack = no_ack
        self.messages = asyncio.Queue()

    async def __aenter__(self):
        self.closed = asyncio.ensure_future(self.channel.closed())  # one watcher for every wait
        self.cancelled = asyncio.get_running_loop().create_future()
        underlay = await self.channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._cancelled_by_broker)
        await self.queue.consume(self._deliver, arguments=self.arguments, no_ack=self.no_ack)
        return self

    def _cancelled_by_broker(self, _frame):
        """The broker ended the consumer (its queue was deleted, or its stream member moved)."""
        if not self.cancelled.done():
            self.cancelled.set_result(None)

    async def _deliver(self, message):
        self.messages.put_nowait(message)

    async def next(self, timeout=None):
        """The next delivery; TimeoutError after ``timeout`` s; ConnectionError once the channel
        closed or the broker cancelled the consumer (the feed then consumes again after its tail)."""
        if self.messages.empty():
            closed, cancelled = self.closed, self.cancelled
            waiter = asyncio.ensure_future(self.messages.get())
            done, _ = await asyncio.wait(
                {waiter, closed, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                waiter.cancel()
                if closed in done:
                    raise ConnectionError("the channel closed")
                if cancelled in done:
                    raise ConsumerCancelled("the broker cancelled the consumer")
                raise TimeoutError
            return waiter.result()
        return self.messages.get_nowait()

    async def __aexit__(self, *_exc):
        with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
            await self.channel.close()
        self.closed.cancel()
        self.cancelled.cancel()


def is_request(message):
    """An RPC request (it names a ``reply_to``) is never a broadcast event, wherever it was routed:
    an AMQP caller may publish one to a broadcast exchange; the gateway does not publish it there."""
    return bool(message.reply_to)


def offset_of(message):
    offset = (message.headers or {}).get("x-stream-offset")
    return offset if isinstance(offset, int) else None


PRECONDITION_ERRORS = (
    aio_pika.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelPreconditionFailed,
)
ACCESS_ERRORS = (aiormq.exceptions.ChannelAccessRefused,)


def broker_error(error):
    """A HutchError for what the broker said when it refused a declaration.

    aiormq's channel errors carry ``reply_code=None`` and only a text, so the
    exception's class decides first; a bare code in the arguments is a fallback.
    """
    code = getattr(error, "reply_code", None) or (error.args[0] if error.args else None)
    text = str(error)
    if isinstance(error, PRECONDITION_ERRORS) or (isinstance(code, int) and code == PRECONDITION_FAILED):
        return PreconditionFailed(f"The broker refused: {text}")
    if isinstance(error, ACCESS_ERRORS) or (isinstance(code, int) and code == ACCESS_REFUSED):
        return Forbidden(f"The broker refused access: {text}")
    return BrokerUnavailable(f"The broker cannot serve this exchange now: {text}")
