"""Watching each request go by: the request metrics and, optionally, a JSON access log line.

``RequestObserver`` is the outermost WSGI layer, so it sees the status of
every answer, the error pages included.  The metrics count a request when
its status is known (an event stream counts once, when it starts).  The
access log line, when ``access_log = true``, is written when the response
ends, with what an operator needs to find the message in RabbitMQ: the app
(idiom), the exchange, the status, the latency and the message_id.
"""

import json
import logging
import time

from hutch import metrics
from hutch.auth.policy import ENVIRON_KEY as API_KEY_NAME_KEY
from hutch.messages import MESSAGE_ID_KEY
from hutch.web.http import ROUTE_NAMES_KEY

access_log = logging.getLogger("hutch.access")


class RequestObserver:
    """Count each request by app and status; log it as one JSON line when asked to."""

    def __init__(self, application, apps, log_access=False):
        self.application = application
        self.apps = frozenset(apps)
        self.log_access = log_access

    def app_of(self, environ):
        segment = environ.get("PATH_INFO", "").lstrip("/").partition("/")[0]
        if segment in self.apps:
            return segment.partition(".")[0] or "index"  # openapi.json: the app is openapi
        return "other"  # unknown paths must not grow the label set

    def __call__(self, environ, start_response):
        started = time.monotonic()
        app = self.app_of(environ)
        answered = []

        def observing_start_response(status, headers, exc_info=None):
            if not answered:
                code = int(status.split(" ", 1)[0])
                answered.append(code)
                metrics.request_answered(app, code, time.monotonic() - started)
            return start_response(status, headers, exc_info)

        try:
            body = self.application(environ, observing_start_response)
        except Exception:
            if not answered:
                metrics.request_answered(app, 500, time.monotonic() - started)
            raise
        if not self.log_access:
            return body
        return LoggedBody(body, environ, app, answered, started)


class LoggedBody:
    """The response body, passed through; its ``close`` writes the access log line."""

    def __init__(self, body, environ, app, answered, started):
        self.body = body
        self.environ = environ
        self.app = app
        self.answered = answered
        self.started = started

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.log()

    def log(self):
        environ = self.environ
        names = environ.get(ROUTE_NAMES_KEY) or {}
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            "idiom": self.app,
            "exchange": names.get("exchange"),
            "routing_key": names.get("routing_key"),
            "status": self.answered[0] if self.answered else None,
            "latency_ms": round((time.monotonic() - self.started) * 1000, 3),
            "message_id": environ.get(MESSAGE_ID_KEY),
            "key": environ.get(API_KEY_NAME_KEY),
        }
        access_log.info(json.dumps(line, separators=(",", ":")))
