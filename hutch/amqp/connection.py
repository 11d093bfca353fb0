"""pika's SelectConnection, writing a batch of frames with one send.

pika hands every frame to the transport on its own (``_adapter_emit_data``,
the hook pika's adapters implement), and the transport sends each with its
own ``send()``; the socket has TCP_NODELAY, so a publish (method, header and
body frames) costs three syscalls and three TCP segments, which RabbitMQ
then reads one by one.  Inside ``batched_writes`` the frames are collected
and written once, in order, when the block ends: the I/O thread wraps each
batch of work handed over by request threads in it.
"""

import contextlib
import logging

import pika

# The broker clients' own loggers.  They log every step of a failed connection attempt at ERROR
# (pika: six lines per attempt; aiormq: a line per attempt and a traceback per lost connection),
# while a broker outage or restart is an expected event that Hutch reports itself, one line per
# change of state (hutch.amqp.client, hutch.amqp.direct_connection, hutch.events.link).
CLIENT_LOGGERS = ("pika", "aiormq", "aio_pika")


def quiet_client_loggers(names=CLIENT_LOGGERS):
    """Let only the broker clients' CRITICAL lines through, unless the ini's logging sections set
    their level (``[logger_pika] level = WARNING`` to see them again)."""
    for name in names:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


class BatchingConnection(pika.SelectConnection):
    """A SelectConnection whose writes can be gathered into one (I/O thread only)."""

    _gathered = None  # the frames of the open batch, or None outside one

    def __init__(self, *args, **kwargs):
        quiet_client_loggers()  # after the ini's logging sections were read
        super().__init__(*args, **kwargs)

    def _adapter_emit_data(self, data):
        if self._gathered is None:
            super()._adapter_emit_data(data)
        else:
            self._gathered.append(data)

    @contextlib.contextmanager
    def batched_writes(self):
        """Send everything written inside the block with one write when it ends."""
        if self._gathered is not None:  # already inside a batch: it will send ours too
            yield
            return
        self._gathered = []
        try:
            yield
        finally:
            gathered, self._gathered = self._gathered, None
            if gathered and not self.is_closed:  # closed meanwhile: pika would not send either
                super()._adapter_emit_data(b"".join(gathered))
