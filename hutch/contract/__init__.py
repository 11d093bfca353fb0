"""The HTTP contract as served: the OpenAPI document at ``/openapi.json`` and its reference page.

The document is built from the code (the route table, the errors each view
raises, the limits the settings enforce), so it cannot drift from what the
gateway does; its prose is data beside it.  Bottom to top:

- ``prose`` (the overview, tags and error codes' text, and the facts it names)
  and ``operation_prose`` (each operation's tag, summary and description);
- ``schemas`` (the components' schemas, the Error schema's code table),
  ``responses`` (the error answers and their headers), ``parameters`` (what
  a request carries: parameters, header family, bodies);
- ``operations`` (what the route table does not say of each operation);
- ``openapi`` (the builder: walks the route table, ``document()``).

``reference`` serves Swagger UI over it at ``/reference``.

Describes every tier, so it may import them (``web``, ``events``,
``delivery``) and everything below; only ``apps/`` imports it.
"""
