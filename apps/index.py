"""GET /: where a person or a client starts.

A browser (``Accept`` prefers HTML) is sent to the dashboard; any other
client gets a JSON index of the gateway's links, under its mount point.
"""

from webob import Response

from hutch.web import Route, Routes, json_response, operation

url_names = ("",)

LINKS = {
    "openapi": "/openapi.json",
    "health": "/health",
    "metrics": "/metrics",
    "dashboard": "/dashboard/",
    "broadcast": "/broadcast/{exchange}",
    "notify": "/notify/{exchange}",
    "register": "/notify/{exchange}/queues/{consumer}",
    "rpc": "/rpc/{exchange}/{routing_key}",
    "events": "/events/{exchange}",
}


def is_browser(request):
    offers = request.accept.acceptable_offers(["application/json", "text/html"])
    return bool(offers) and offers[0][0] == "text/html"


@operation("index")
def index(request, gateway):
    root = request.script_name.rstrip("/")
    if is_browser(request):
        return Response(status=303, location=root + LINKS["dashboard"])
    return json_response(200, {"links": {name: root + path for name, path in LINKS.items()}})


application = Routes(Route("", GET=index))
