"""Push delivery: notify queues delivered to HTTP URLs, and HTTP services answering RPC calls.

The gateway (WSGI) only writes subscriptions (``store``) and handles dead
letters (``deadletters``); the delivery processes (``main``, started by
``hutch serve`` or ``hutch delivery``) consume the queues with aio-pika and
POST each message with aiohttp (``worker``).  Modules by job: ``store``
(subscriptions in Redis), ``signing`` (Standard Webhooks, secrets sealed at
rest), ``targets`` (``push_allow`` and the SSRF checks), ``topology`` (the
retry and dead-letter queues), ``worker``, ``main``, ``api`` (the HTTP routes
the app modules mount).

May import the vocabulary, ``hutch.settings``, ``hutch.inifile`` and, for
``api`` only, ``hutch.web.http``; never ``events``, ``contract`` or ``serve``.
Only the app modules (which mount ``api``), ``contract`` and ``serve`` import it.
"""
