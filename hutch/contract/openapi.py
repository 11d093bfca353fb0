"""The OpenAPI 3.0.3 description of the HTTP contract (the gateway's public interface).

The paths come from the route table (``apps/``, as ``hutch.web.dispatch`` loads
it): each ``Route`` gives its path, methods and permission, each view's
``hutch.web.http.operation`` its id and the errors it raises, and the route adds
what it answers itself (a bad name, 401/403, 405, the session store).  This
module walks the table; the parts it puts together are modules of their own:
``operations`` (what the table does not say of an operation), ``responses``
(the error answers), ``parameters`` (what a request carries), ``schemas``
(the components' schemas) and the prose, as data (``prose``,
``operation_prose``).  The document is built once per apps folder;
``document(server_url)`` only adds the ``servers`` entry.  Callers must treat
the returned dict as read-only.
"""

import functools
import re
import types

from hutch.contract import operation_prose
from hutch.contract.operations import OPERATIONS
from hutch.contract.parameters import PARAMETERS
from hutch.contract.prose import DESCRIPTION, TAGS, fill
from hutch.contract.responses import AUTH_ERRORS, NAME_ERRORS, RESPONSE_HEADERS, RESPONSES, error_responses
from hutch.contract.schemas import SCHEMAS, ref
from hutch.errors import (
    BrokerUnavailable,
    MethodNotAllowed,
    PreconditionFailed,
    SessionStoreUnavailable,
    TooManyStreams,
)
from hutch.inifile import ROOT
from hutch.web.dispatch import load_app_modules, route_table

OPENAPI_VERSION = "3.0.3"
CONTRACT_VERSION = "1"
APPS_DIRECTORY = ROOT / "apps"  # the gateway's default
# Browsers log in once (POST /dashboard/, action=login) and are then known by their session cookie.
BROWSER_SECURITY = [{"bearerAuth": []}, {"basicAuth": []}, {"dashboardSession": []}]

# The event tier (``hutch.events``) serves this path, not an app module: its route as data.
EVENTS_PATH = "/events/{exchange}"
EVENTS_VIEW = types.SimpleNamespace(
    operation_id="events", raises=(PreconditionFailed, BrokerUnavailable, TooManyStreams)
)
EVENTS_ROUTE = types.SimpleNamespace(
    permissions={"GET": ("watch",)},
    browser=True,  # the dashboard's session (its cookie, or a ticket made from it) stands for the key
    page=None,
    reads_session=True,  # the event servers read the session's store when no key or ticket is sent
    views={"GET": EVENTS_VIEW},
)


def route_operation(path, method, route, view):
    """One operation of the document, from a route of the table and its view."""
    names = re.findall(r"{(\w+)}", path)
    idioms = route.permissions.get(method, ())
    tag, summary, description = operation_prose.OPERATIONS[view.operation_id]
    extra = OPERATIONS[view.operation_id]
    # Before the route is chosen (405): JSON always.  Once it is (a bad name, then the route's own
    # errors): a page for a browser where the route has pages.
    dispatch = (MethodNotAllowed, *(NAME_ERRORS if names else ()))
    guarded = (
        *(AUTH_ERRORS if idioms else ()),
        *((SessionStoreUnavailable,) if route.reads_session else ()),
        *view.raises,
    )
    operation = {
        "operationId": view.operation_id,
        "tags": [tag],
        "summary": summary,
        "description": fill(description),
        "parameters": [
            *(ref("parameters", name) for name in names if name in PARAMETERS),
            *extra.get("parameters", ()),
        ],
        "responses": {
            **extra["responses"],
            **error_responses(*dispatch, *guarded, pages=(*guarded, *NAME_ERRORS) if route.page else ()),
        },
    }
    if "requestBody" in extra:
        operation["requestBody"] = extra["requestBody"]
    operation.update({key: value for key, value in extra.items() if key.startswith("x-")})
    if not idioms:
        operation["security"] = []
        return operation
    resource = "/".join(f"{{{name}}}" for name in ("exchange", "routing_key") if name in names)
    permission = " ".join(f"{idiom}:{resource}" if resource else idiom for idiom in idioms)
    operation["description"] += (
        f"\n\nAPI key permission (unless the gateway runs with `auth = off`): `{permission}`."
    )
    operation["x-hutch-permission"] = permission
    if route.browser:
        operation["security"] = BROWSER_SECURITY
    return operation


def paths(apps):
    """The document's paths from the route table ``{mount segment: Routes}``."""
    documented = {}
    for path, method, route, view in route_table(apps):
        if getattr(view, "operation_id", None) is not None:  # not a test's own app module
            documented.setdefault(path, {})[method.lower()] = route_operation(path, method, route, view)
    documented[EVENTS_PATH] = {
        "get": route_operation(EVENTS_PATH, "GET", EVENTS_ROUTE, EVENTS_ROUTE.views["GET"])
    }
    return documented


SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer {secret}`: the API key's secret alone.",
    },
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "`Authorization: Basic base64({name}:{secret})`: the API key's name as the user "
        "and its secret as the password.",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "hutch_session",
        "description": "The dashboard's session after logging in with an API key (`POST /dashboard/`, "
        "`action=login`): the browser's EventSource cannot send `Authorization`. The session keeps the "
        "key's name and a fingerprint of its secret; the key's permissions apply, and a key removed or "
        "given a new secret ends the session at its next request. With `session.type = ext:redis` the "
        "cookie holds only a signed id and logging out deletes the session on the server. A request "
        "with `Authorization` is judged by it alone.",
    },
}

BASE = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "Hutch",
        "version": CONTRACT_VERSION,
        "description": DESCRIPTION,
        "license": {"name": "MIT"},
    },
    "tags": TAGS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "parameters": PARAMETERS,
        "headers": {name: dict(header) for name, header in RESPONSE_HEADERS.items() if name != "RetryAfter"},
        "securitySchemes": SECURITY_SCHEMES,
    },
    # Either scheme will do; /health and /openapi.json override this with no requirement.
    "security": [{"bearerAuth": []}, {"basicAuth": []}],
}


@functools.lru_cache(maxsize=4)
def _document(apps_directory):
    return {**BASE, "paths": paths(load_app_modules(apps_directory))}


def document(server_url, apps_directory=APPS_DIRECTORY):
    """The OpenAPI document for the gateway serving ``apps_directory`` at ``server_url`` (its SCRIPT_NAME)."""
    return {
        **_document(str(apps_directory)),
        "servers": [{"url": server_url or "/", "description": "this gateway"}],
    }
