"""Hutch: an HTTP gateway to RabbitMQ (broadcast, notify, request/response).

The tree, bottom to top (a package imports only from its own layer's
vocabulary and the layers below; ``tests/unit/test_layers.py`` holds it):

- vocabulary, the modules here: ``errors`` (the one exception hierarchy),
  ``names``, ``messages`` (HTTP <-> AMQP), ``metrics`` (and ``metrics_env``),
  ``files``;
- services: ``amqp`` (the broker client) and ``auth`` (keys, sessions, tickets);
- configuration: ``settings`` (the typed table, parsed once) and ``inifile``;
- tiers: ``web`` (the WSGI gateway under mod_wsgi), ``events`` (event streams,
  asyncio) and ``delivery`` (push delivery, asyncio);
- ``contract`` (the OpenAPI document of them all) and ``serve`` (the
  processes: ``hutch serve``, the front, the CLI);
- ``apps/`` beside this package: the views Paste's urlparser dispatches to.

docs/architecture.md draws the processes and the path of each idiom.
"""

__version__ = "0.3.0"
