"""The broker client of the WSGI tier: one ``Broker`` per process, shared by its request threads.

``client.Broker`` is what a view calls (broadcast, notify, RPC); it hands the
work to an I/O thread (``handoff``; ``publisher``, ``rpc``, ``topology``) or,
with ``publisher = direct``, writes from the request thread
(``direct_publisher``, ``direct_connection``, ``handshake``, ``direct_rpc``,
``wire``, ``tls``); both publishers keep their confirms in ``confirms``, and
both connections take a cluster's nodes in the order of ``nodes``.
``history`` names the stream a broadcast exchange keeps; ``outcomes`` turns
what the broker says into gateway errors.  The event tier takes its connection
parameters from ``connection``.

May import the vocabulary (``hutch.errors``, ``hutch.metrics``); never the
tiers, ``auth`` or ``settings`` (the app factory passes what it needs).
"""
