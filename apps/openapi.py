"""GET /openapi.json: the HTTP contract, machine-readable."""

from hutch.contract.openapi import document
from hutch.web.http import Route, Routes, json_response, operation

url_names = ("openapi.json",)


@operation("openapi")
def openapi(request, gateway):
    """The document of this gateway's own route table, under its mount point."""
    root = request.script_name.rsplit("/", 1)[0]
    return json_response(200, document(root, gateway.settings.apps_directory))


application = Routes(Route("", GET=openapi))
