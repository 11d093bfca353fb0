"""Push delivery against the obvious alternative, in one run (``bench/run push``).

- throughput: N messages waiting in a consumer queue, delivered to a local receiver by one Hutch
  delivery process at ``concurrency`` 1, 8 and 64, and by the baseline: a pika consumer that POSTs
  each message with requests and acks after the 2xx (one at a time, as such a script does);
- latency: messages published at a steady 500/s (pika, confirmed) and the time from publish to
  the receiver, p50 and p99, for Hutch (concurrency 64) and the baseline.

The receiver is a minimal asyncio HTTP server in a process of its own (it must not be what limits
either side), timing arrivals on the publisher's clock.  Everything runs on this machine (the
shared RabbitMQ, a private Redis): read the ratios, not the absolute figures.
"""

import argparse
import contextlib
import json
import pathlib
import statistics
import subprocess
import sys
import time
import uuid

import pika
import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.push import SESSION_SECRET, DeliveryProcess  # noqa: E402
from harness.redis_node import PrivateRedis  # noqa: E402
from harness.server import free_port  # noqa: E402

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


# --- the receiver (a process of its own) ------------------------------------------------------


def receiver_main(port):
    """A minimal HTTP/1.1 server on asyncio (keep-alive, Content-Length bodies): it must not be the
    bottleneck of either side.  POST /hook records the arrival of each webhook-id (or X-Id);
    GET /stats answers them as JSON; POST /reset forgets them."""
    import asyncio

    arrivals = {}

    class Connection(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", 0))
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                _method, path = head[0].split(" ")[:2]
                body = b""
                if path == "/hook":
                    arrivals.setdefault(headers.get("webhook-id") or headers.get("x-id"), time.time())
                elif path == "/stats":
                    body = json.dumps(arrivals).encode()
                elif path == "/reset":
                    arrivals.clear()
                status = "200 OK" if body else "204 No Content"
                extra = f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n" if body else ""
                self.transport.write(f"HTTP/1.1 {status}\r\n{extra}\r\n".encode() + body)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Connection, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class ReceiverProcess:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.process = subprocess.Popen([sys.executable, __file__, "--receiver", str(self.port)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/stats", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    def arrivals(self):
        return requests.get(f"http://127.0.0.1:{self.port}/stats", timeout=30).json()

    def reset(self):
        requests.post(f"http://127.0.0.1:{self.port}/reset", timeout=10)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


# --- the baseline: pika + requests, one message at a time ---------------------------------------


def baseline_main(queue, url):
    session = requests.Session()
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)

    def on_message(ch, method, properties, body):
        response = session.post(
            url,
            data=body,
            headers={"X-Id": properties.message_id, "Content-Type": "application/json"},
            timeout=15,
        )
        if 200 <= response.status_code < 300:
            ch.basic_ack(method.delivery_tag)
        else:
            ch.basic_nack(method.delivery_tag, requeue=True)

    channel.basic_consume(queue, on_message)
    channel.start_consuming()


# --- the driver ---------------------------------------------------------------------------------


def cleanup(connection, exchanges):
    channel = connection.channel()
    for exchange in exchanges:
        for suffix in (".c", ".c.dead", ".c.retry.1000"):
            channel.queue_delete(exchange + suffix)
        channel.exchange_delete(exchange)
    connection.close()


def declare(channel, exchange, queue):
    channel.exchange_declare(exchange, "fanout", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})
    channel.queue_bind(queue, exchange)


def publish(channel, exchange, count, rate=None):
    """Publish ``count`` messages (confirmed); ``{message_id: publish time}``."""
    sent = {}
    start = time.time()
    for number in range(count):
        if rate:
            due = start + number / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
        message_id = uuid.uuid4().hex
        sent[message_id] = time.time()
        properties = pika.BasicProperties(
            message_id=message_id, content_type="application/json", delivery_mode=2
        )
        channel.basic_publish(exchange, "", json.dumps({"n": number}).encode(), properties)
    return sent


def wait_for_arrivals(receiver, count, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrivals = receiver.arrivals()
        if len(arrivals) >= count:
            return arrivals
        time.sleep(0.2)
    raise RuntimeError(f"only {len(receiver.arrivals())} of {count} arrived")


def rate_of(arrivals):
    times = sorted(arrivals.values())
    return (
        (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")
    )


def percentiles(sent, arrivals):
    latencies = sorted((arrivals[key] - sent[key]) * 1000 for key in sent if key in arrivals)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99


class Hutch:
    """One delivery process; the subscription written to its store directly (as the gateway does)."""

    def __init__(self, redis_url, queue_type="classic"):
        from hutch.delivery.signing import Sealer
        from hutch.delivery.store import SubscriptionStore

        self.store = SubscriptionStore(redis_url, Sealer(SESSION_SECRET.encode()))
        self.process = DeliveryProcess(AMQP, redis_url, notify_queue_type=queue_type)
        self.process.ini.write_text(self.process.ini.read_text().replace("level = INFO", "level = WARNING"))
        self.process.start()

    def subscribe(self, exchange, consumer, url, concurrency):
        self.store.put("push", exchange, consumer, {"url": url, "concurrency": concurrency, "timeout": 15.0,
                                                    "retry_schedule": (1,)})  # fmt: skip

    def unsubscribe(self, exchange, consumer):
        self.store.delete("push", exchange, consumer)

    def stop(self):
        self.process.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=3000, help="per throughput run")
    parser.add_argument("--seconds", type=float, default=10.0, help="of publishing at 500/s per latency run")
    args = parser.parse_args(argv)
    if args.receiver:
        return receiver_main(args.receiver)
    if args.baseline:
        return baseline_main(*args.baseline)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.confirm_delivery()
    created = []
    with PrivateRedis(persistent=False) as redis_node, contextlib.ExitStack() as stack:
        stack.callback(cleanup, connection, created)
        receiver = ReceiverProcess()
        stack.callback(receiver.stop)
        hutch = Hutch(redis_node.url)
        stack.callback(hutch.stop)

        def run(concurrency, count, rate=None):
            """``count`` messages to a fresh exchange, delivered by Hutch at ``concurrency`` (0: the
            baseline): deliveries/s of messages waiting, or (``rate``) latency p50 and p99."""
            exchange = f"bench.push.{uuid.uuid4().hex[:8]}"
            declare(channel, exchange, f"{exchange}.c")
            created.append(exchange)
            receiver.reset()
            sent = None if rate else publish(channel, exchange, count)
            if concurrency:
                hutch.subscribe(exchange, "c", receiver.url, concurrency)
            else:
                command = [sys.executable, __file__, "--baseline", f"{exchange}.c", receiver.url]
                baseline = subprocess.Popen(command)
            try:
                if rate:
                    time.sleep(2)  # the consumer starts within its poll
                    sent = publish(channel, exchange, count, rate=rate)
                arrivals = wait_for_arrivals(receiver, count)
            finally:
                if concurrency:
                    hutch.unsubscribe(exchange, "c")
                else:
                    baseline.terminate()
                    baseline.wait(10)
            return percentiles(sent, arrivals) if rate else rate_of(arrivals)

        results = {f"hutch c={concurrency}": run(concurrency, args.messages) for concurrency in (1, 8, 64)}
        results["baseline (pika + requests)"] = run(0, args.messages)
        count = int(500 * args.seconds)
        latency = {"hutch c=64": run(64, count, 500), "baseline (pika + requests)": run(0, count, 500)}
    base = results["baseline (pika + requests)"]
    print(f"\nthroughput, {args.messages} waiting messages to a local receiver (deliveries/s):")
    for name, rate in results.items():
        print(f"  {name:30} {rate:8.0f}   x{rate / base:.1f} the baseline")
    print(f"\npublish -> receiver at 500 msg/s for {args.seconds:g} s (ms):")
    for name, (p50, p99) in latency.items():
        print(f"  {name:30} p50 {p50:7.1f}   p99 {p99:7.1f}")


if __name__ == "__main__":
    main()
