"""The AMQP 0-9-1 handshake of the direct publisher's connection, and what it negotiates.

Start/StartOk (a PLAIN login), Tune/TuneOk, Open/OpenOk, written and read
on the blocking socket (or a ``tls.BlockingTls`` over it) before any other
thread may use it, in ``wire``'s frames: the client properties, channel
limit, frame size and heartbeat a pika connection would offer and accept.
"""

import os

from pika import spec

from hutch.amqp import wire

CLIENT_FRAME_MAX = spec.FRAME_MAX_SIZE  # what pika proposes (131072)
CHANNELS_NEEDED = 2  # broadcast's and notify's confirm channels; RPC channels are numbered after them
CHANNEL_MAX = 2047  # what the client proposes (RabbitMQ's default limit): the rest is for RPC calls
READ_SIZE = 65536
CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "publisher_confirms": True,
}


class ConnectionFailed(Exception):
    """The handshake was refused or the broker closed the connection."""


def handshake(link, decoder, parameters, heartbeat):
    """Log in on ``link`` (``parameters``: pika's, for the credentials and virtual host) and open the
    connection; returns the negotiated ``(channel_max, frame_max, heartbeat)``.

    ``heartbeat``: the client's wish (None: take the broker's).  Frames that arrived with Open-Ok
    stay in ``decoder.frames``, for the reader.
    """
    link.sendall(wire.PROTOCOL_HEADER)
    start = _expect(link, decoder, spec.Connection.Start)
    if b"PLAIN" not in start.mechanisms.split():
        raise ConnectionFailed(f"the broker offers no PLAIN login ({start.mechanisms!r})")
    credentials = parameters.credentials
    response = f"\0{credentials.username}\0{credentials.password}"
    properties = {
        "product": "hutch",
        "capabilities": CAPABILITIES,
        "connection_name": f"hutch pid {os.getpid()} publisher",
    }
    link.sendall(wire.method(0, spec.Connection.StartOk(properties, "PLAIN", response, "en_US")))
    tune = _expect(link, decoder, spec.Connection.Tune)
    channel_max = _negotiate(CHANNEL_MAX, tune.channel_max)
    if channel_max < CHANNELS_NEEDED:
        raise ConnectionFailed(f"the broker allows {channel_max} channel(s); publishing needs 2")
    frame_max = _negotiate(CLIENT_FRAME_MAX, tune.frame_max)
    heartbeat = tune.heartbeat if heartbeat is None else heartbeat
    link.sendall(
        wire.method(0, spec.Connection.TuneOk(channel_max, frame_max, heartbeat))
        + wire.method(0, spec.Connection.Open(parameters.virtual_host))
    )
    _expect(link, decoder, spec.Connection.OpenOk)
    return channel_max, frame_max, heartbeat


def _expect(sock, decoder, method_class):  # sock: the socket, or a tls.BlockingTls over it
    """Read until ``method_class`` arrives on channel 0 (handshake only); a Connection.Close fails."""
    frames = decoder.frames
    while True:
        if not frames:
            decoder.feed(_recv(sock))
            continue
        method = getattr(frames.popleft(), "method", None)
        if isinstance(method, method_class):
            return method
        if isinstance(method, spec.Connection.Close):
            raise ConnectionFailed(f"({method.reply_code}) {method.reply_text}")


def _recv(sock):
    data = sock.recv(READ_SIZE)
    if not data:
        raise ConnectionFailed("the broker closed the socket during the handshake")
    return data


def _negotiate(client, server):
    """AMQP's rule (as pika applies it): 0 means no limit, else the smaller one."""
    return max(client, server) if not client or not server else min(client, server)
