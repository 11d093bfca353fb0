"""The broker's own ceiling on this host: pipelined confirmed publishes, no HTTP, no per-message work.

A process sends one publish (encoded once with ``hutch.amqp.wire``: persistent, mandatory) on a
confirm-mode channel in windows of ``window``, ``depth`` windows unconfirmed at most, for a fixed
time, and counts acks; ``ceiling`` runs several at once, in case one client is the limit.
"""

import multiprocessing
import socket
import time

import pika
from pika import spec

from hutch.amqp import wire

READ_SIZE = 65536


def _expect(sock, decoder, method_class):
    frames = decoder.frames
    while True:
        if not frames:
            data = sock.recv(READ_SIZE)
            if not data:
                raise ConnectionError("the broker closed the connection during the handshake")
            decoder.feed(data)
            continue
        method = getattr(frames.popleft(), "method", None)
        if isinstance(method, method_class):
            return method
        if isinstance(method, spec.Connection.Close | spec.Channel.Close):
            raise ConnectionError(f"({method.reply_code}) {method.reply_text}")


def open_confirm_channel(url):
    """A socket with AMQP open and channel 1 in confirm mode; the negotiated frame_max."""
    parameters = pika.URLParameters(url)
    sock = socket.create_connection((parameters.host, parameters.port), 10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = wire.Decoder()
    sock.sendall(wire.PROTOCOL_HEADER)
    _expect(sock, decoder, spec.Connection.Start)
    credentials = parameters.credentials
    response = f"\0{credentials.username}\0{credentials.password}"
    sock.sendall(
        wire.method(0, spec.Connection.StartOk({"product": "hutch-bench-ceiling"}, "PLAIN", response))
    )
    tune = _expect(sock, decoder, spec.Connection.Tune)
    frame_max = min(tune.frame_max or 131072, 131072)
    sock.sendall(
        wire.method(0, spec.Connection.TuneOk(tune.channel_max, frame_max, 0))
        + wire.method(0, spec.Connection.Open(parameters.virtual_host))
    )
    _expect(sock, decoder, spec.Connection.OpenOk)
    sock.sendall(wire.method(1, spec.Channel.Open()) + wire.method(1, spec.Confirm.Select()))
    _expect(sock, decoder, spec.Confirm.SelectOk)
    return sock, decoder, frame_max


def publish_for(url, exchange, body, seconds, window=500, depth=4, ready=None):
    """Confirmed messages in ``seconds`` from one connection (see the module docstring), and the
    wall-clock start and end; ``ready`` (a barrier) lines several publishers up once connected."""
    sock, decoder, frame_max = open_confirm_channel(url)
    if ready is not None:
        ready.wait()
    properties = pika.BasicProperties(content_type="text/plain", delivery_mode=2, message_id="ceiling")
    burst = wire.publish(1, exchange, body, properties, frame_max) * window
    sent = acked_upto = 0
    singles = set()  # tags acked one by one above acked_upto
    try:
        started = time.perf_counter()
        end = started + seconds
        while True:
            now = time.perf_counter()
            if now < end and sent - (acked_upto + len(singles)) < window * depth:
                sock.sendall(burst)
                sent += window
                continue
            if acked_upto + len(singles) >= sent:
                break
            decoder.feed(sock.recv(READ_SIZE))
            frames = decoder.frames
            while frames:
                method = getattr(frames.popleft(), "method", None)
                if isinstance(method, spec.Basic.Ack):
                    if method.multiple:
                        singles = {tag for tag in singles if tag > method.delivery_tag}
                        acked_upto = max(acked_upto, method.delivery_tag)
                    elif method.delivery_tag > acked_upto:
                        singles.add(method.delivery_tag)
                elif method is not None and not isinstance(method, spec.Basic.Return):
                    raise RuntimeError(f"the broker answered {method}")
        return sent, time.time() - (time.perf_counter() - started), time.time()
    finally:
        sock.close()


def _worker(url, exchange, body, seconds, ready, results):
    results.put(publish_for(url, exchange, body, seconds, ready=ready))


def ceiling(url, exchange, body, seconds, processes):
    """Confirmed messages per second of ``processes`` publishers at once (each its own connection,
    all started together once connected): every message over the span from the first start to the
    last confirm."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(processes)
    workers = [
        context.Process(target=_worker, args=(url, exchange, body, seconds, ready, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    span = max(end for _, _, end in outcomes) - min(start for _, start, _ in outcomes)
    return sum(sent for sent, _, _ in outcomes) / span
