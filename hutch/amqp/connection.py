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

import pika


class BatchingConnection(pika.SelectConnection):
    """A SelectConnection whose writes can be gathered into one (I/O thread only)."""

    _gathered = None  # the frames of the open batch, or None outside one

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
