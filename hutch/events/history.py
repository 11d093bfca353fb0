"""Reading a range of an exchange's history stream, older than what its feed keeps in memory.

A stream that resumes, or opens, further back than its feed's buffer replays
those positions with a ``read_range`` of its own: a consumer on its own
channel from the first offset wanted, until the last one or until the stream
has nothing more.  It also tells whether retention has removed some of them
(the stream then says ``gap``).  A feed backfills its buffer the same way
when it starts.
"""

import contextlib

from hutch.events.client import Event
from hutch.events.consumer import AMQP_ERRORS, PREFETCH, Consumer, is_request, offset_of

READ_IDLE = 5.0  # a range read that gets nothing for this long has reached the end of the stream


async def read_range(feed, start, stop):
    """The events at offsets ``start`` up to (not including) ``stop``, read from ``feed``'s stream.

    Returns ``(events, dropped)``: ``dropped`` is True when retention has
    removed offsets from ``start`` on (the stream begins later).
    """
    channel = await feed.tier.link.channel()
    events, dropped = [], False
    try:
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.declare_queue(feed.queue_name, passive=True)
        async with Consumer(channel, queue, {"x-stream-offset": start}) as messages:
            while True:
                try:
                    message = await messages.next(READ_IDLE)
                except TimeoutError:
                    break
                offset = offset_of(message)
                await message.ack()
                if offset is None:
                    continue
                if not events and offset > start:
                    dropped = await first_offset(feed, start) > start
                if offset >= stop:
                    break
                if is_request(message):
                    continue
                events.append(Event(offset, feed.render(message, str(offset))))
    finally:
        with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
            await channel.close()
    return events, dropped


async def first_offset(feed, fallback):
    """``feed``'s stream's first retained offset (``fallback`` if it cannot be read)."""
    channel = await feed.tier.link.channel()
    try:
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(feed.queue_name, passive=True)
        async with Consumer(channel, queue, {"x-stream-offset": "first"}) as messages:
            try:
                message = await messages.next(READ_IDLE)
            except TimeoutError:
                return fallback
            offset = offset_of(message)
            await message.ack()
            return fallback if offset is None else offset
    finally:
        with contextlib.suppress(*AMQP_ERRORS, RuntimeError):
            await channel.close()
