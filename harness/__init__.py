"""The process tooling the tests and the benchmark share: gateway servers, private RabbitMQ nodes
and clusters, a private redis-server, HAProxy, AMQP helpers.  Part of the checkout (importable from
its root, as ``tests`` and ``bench`` are), not of the shipped ``hutch`` package."""
