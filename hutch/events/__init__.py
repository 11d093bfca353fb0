"""The event tier: ``GET /events/{exchange}`` served by asyncio processes beside mod_wsgi.

``server`` answers the request (auth, errors, the stream's writer), ``feeds``
consumes each exchange once per process (again after every reconnection) and
fans it out to every viewer, ``client`` is one viewer's stream and the bound on
its backlog (a slow one is cut off), ``history`` reads older positions from an
exchange's history stream, ``consumer`` is the AMQP consumer they read through
(and what the broker's refusals mean), ``resume`` decides where a stream
starts, ``sse`` is the wire format, ``link`` the process's AMQP connection,
``session`` the dashboard's sessions, ``main`` one process.

May import the vocabulary, ``hutch.settings``, ``hutch.inifile``,
``hutch.amqp`` (its connection parameters) and ``hutch.auth``; never the WSGI
tier, ``delivery``, ``contract`` or ``serve``.
"""
