"""GET /events/{exchange}: a broadcast exchange's messages as Server-Sent Events.

The exchange is declared as for broadcast.  ``Last-Event-ID`` (or the
``last_event_id`` query parameter, for a page that reconnects with a fresh
EventSource) resumes from what this process still holds; ``hutch.streams``
does the work, this module only answers the request.  It needs ``watch`` on
the exchange: from the ``Authorization`` header, or, for the dashboard's
EventSource (which cannot send headers), from the key its session logged in
with.
"""

from webob import Response

from hutch.csrf import authorize_browser
from hutch.errors import BrokerUnavailable
from hutch.streams import hub_for
from hutch.web import Route, Routes


def resume_from(request):
    return (request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "").strip()


def stream(request, gateway, exchange):
    # an API key in the header (machine clients), or the one the dashboard's browser logged in with
    authorize_browser(request.environ, gateway.settings.auth, "watch", exchange)
    if not gateway.broker.is_connected():
        raise BrokerUnavailable("The message broker is unreachable.", gateway.settings.retry_after)
    events = hub_for(gateway).open(exchange, resume_from(request))
    response = Response(app_iter=events, content_type="text/event-stream", charset="utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx and friends: do not buffer the stream
    return response


application = Routes(Route("{exchange}", GET=stream))
