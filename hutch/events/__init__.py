"""The event tier: ``GET /events/{exchange}`` served by asyncio processes beside mod_wsgi.

``server`` answers the request (auth, errors, the stream's writer), ``feeds``
fans one AMQP consumer per exchange out to every viewer, ``resume`` decides
where a stream starts, ``sse`` is the wire format, ``link`` the process's AMQP
connection, ``session`` the dashboard's sessions, ``main`` one process.

May import the vocabulary, ``hutch.settings``, ``hutch.inifile``,
``hutch.amqp`` (its connection parameters) and ``hutch.auth``; never the WSGI
tier, ``delivery``, ``contract`` or ``serve``.
"""
