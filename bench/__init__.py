"""The benchmark: Hutch against hello-world, RabbitMQ's HTTP API, a naive app and raw pika.

``bench/run`` is the entry point; BENCHMARKS.md has the figures and how to
reproduce them.
"""
