"""GET /: where a person or a client starts.

A browser (``Accept`` prefers HTML) is sent to the dashboard; any other
client gets a JSON index of the gateway's links, under its mount point.
"""

from webob import Response

from hutch.web.http import Route, Routes, json_response, operation, prefers_html

url_names = ("",)

LINKS = {
    "openapi": "/openapi.json",
    "reference": "/reference",
    "health": "/health",
    "metrics": "/metrics",
    "dashboard": "/dashboard/",
    "broadcast": "/broadcast/{exchange}",
    "notify": "/notify/{exchange}",
    "register": "/notify/{exchange}/queues/{consumer}",
    "rpc": "/rpc/{exchange}/{routing_key}",
    "events": "/events/{exchange}",
}


@operation("index")
def index(request, gateway):
    root = request.script_name.rstrip("/")
    if prefers_html(request):
        return Response(status=303, location=root + LINKS["dashboard"])
    return json_response(200, {"links": {name: root + path for name, path in LINKS.items()}})


application = Routes(Route("", GET=index))
