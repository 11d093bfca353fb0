"""The WSGI tier: what mod_wsgi runs for every request but event streams.

``app`` builds the stack from the ini (request observer, Paste's error
middleware, Beaker, the gateway, ``dispatch`` over ``apps/``); ``http`` is the
plumbing the app modules share (routes, bodies, JSON, errors mapped to HTTP in
one place); ``batch``/``bulk`` and ``idempotency`` serve bulk publishing and
retries; ``pages`` the dashboard's HTML; ``server_errors`` Apache's own errors.

May import the vocabulary, ``hutch.settings``, ``hutch.amqp`` and
``hutch.auth``; never ``events``, ``delivery``, ``contract`` or ``serve``.
"""
