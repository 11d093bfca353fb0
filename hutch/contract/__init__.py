"""The HTTP contract as served: the OpenAPI document at ``/openapi.json`` and its reference page.

The document is built from the code (the route table, the errors each view
raises, the limits the settings enforce), so it cannot drift from what the
gateway does; its prose is data beside it.  ``reference`` serves Swagger UI
over it at ``/reference``.

Describes every tier, so it may import them (``web``, ``events``,
``delivery``) and everything below; only ``apps/`` imports it.
"""
