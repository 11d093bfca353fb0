"""pika's SelectConnection, sending at once and in batches, reading once.

pika hands every frame to the transport on its own (``_adapter_emit_data``,
the hook pika's adapters implement).  Inside ``batched_writes`` the frames
are collected and written once, in order, when the block ends: the I/O
thread wraps each batch of work handed over by request threads in it, so a
publish (method, header and body frames) is one segment RabbitMQ reads at
once.

pika's plaintext transport then buffers every write, switches the socket to
write-readiness (``epoll_ctl``), sends on the next loop turn and switches
back (``epoll_ctl`` again); and it reads until a ``recv`` fails with
EAGAIN.  ``DirectTransport`` sends at once when nothing is queued and reads
until a ``recv`` returns less than it asked for (the poller is
level-triggered, so data that arrives later wakes it again): per confirmed
publish, two ``epoll_ctl``, a loop turn and a failing ``recv`` fewer.  TLS
connections keep pika's own transport.
"""

import contextlib
import logging

import pika
from pika.adapters.utils import io_services_utils

log = logging.getLogger(__name__)

PlaintextTransport = io_services_utils._AsyncPlaintextTransport
TRY_AGAIN = io_services_utils._TRY_IO_AGAIN_SOCK_ERROR_CODES  # EAGAIN, EWOULDBLOCK


class DirectTransport(PlaintextTransport):
    """pika's plaintext transport, sending without a loop turn and reading without a failing recv.

    Only its behaviour differs, not its state: ``BatchingConnection`` turns
    the transport pika built into one by setting its class.
    """

    def write(self, data):
        """Send now; what the socket does not take goes to pika's buffer and write-readiness path."""
        if self._state != self._STATE_ACTIVE or self._tx_buffers:
            super().write(data)  # inactive: pika drops it; a backlog: queue behind it, in order
            return
        try:
            sent = self._sigint_safe_send(self._sock, data)
        except OSError as error:
            if error.errno not in TRY_AGAIN:
                log.warning("sending to the broker failed, aborting the connection: %r", error)
                self._initiate_abort(error)  # reports connection_lost from the loop, as pika does
                return
            sent = 0
        if sent < len(data):
            super().write(data[sent:])

    def _consume(self):
        """Read until the socket is drained: a recv that returns less than it asked for."""
        consumed = 0
        while self._state == self._STATE_ACTIVE and consumed < self._MAX_CONSUME_BYTES:
            data = self._sigint_safe_recv(self._sock, self._MAX_RECV_BYTES)
            if not data:
                raise self.RxEndOfFile()
            consumed += len(data)
            self._protocol.data_received(data)
            if len(data) < self._MAX_RECV_BYTES:
                return


class BatchingConnection(pika.SelectConnection):
    """A SelectConnection whose writes can be gathered into one (I/O thread only)."""

    _gathered = None  # the frames of the open batch, or None outside one

    def _proto_connection_made(self, transport):
        if type(transport) is PlaintextTransport:
            transport.__class__ = DirectTransport
        super()._proto_connection_made(transport)

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
