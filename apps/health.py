"""GET /health: can this process reach the broker?"""

from hutch.web.http import Route, Routes, json_response, operation


@operation("health")
def health(request, gateway):
    if gateway.broker.is_connected():
        return json_response(200, {"broker": "ok"})
    retry = [("Retry-After", str(gateway.settings.retry_after))]
    return json_response(503, {"broker": "unavailable"}, headers=retry)


application = Routes(Route("", GET=health))
