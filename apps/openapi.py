"""GET /openapi.json: the HTTP contract, machine-readable."""

from hutch.openapi import document
from hutch.web import Route, Routes, json_response, operation

url_names = ("openapi.json",)


@operation("openapi")
def openapi(request, gateway):
    return json_response(200, document(request.script_name.rsplit("/", 1)[0]))


application = Routes(Route("", GET=openapi))
