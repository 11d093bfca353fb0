"""The WSGI factory: one function builds the whole stack from the ini."""

import atexit
import dataclasses
import logging

from beaker.middleware import SessionMiddleware
from paste.exceptions.errormiddleware import ErrorMiddleware, error_template
from paste.httpexceptions import HTTPExceptionHandler
from webob import Request

from hutch.amqp.client import Broker
from hutch.errors import SessionStoreUnavailable
from hutch.settings import parse_settings
from hutch.web.dispatch import AppDirectory
from hutch.web.http import GATEWAY_KEY, error_response, plain_error_page
from hutch.web.idempotency import NoIdempotency, make_store
from hutch.web.observe import RequestObserver
from hutch.web.server_errors import MethodNotAllowedDocument

log = logging.getLogger(__name__)

ERROR_MESSAGE = "The gateway failed to handle the request; the error is in its log."


@dataclasses.dataclass(frozen=True)
class Gateway:
    """What every app module needs: the parsed settings, the broker, the idempotency store."""

    settings: object
    broker: Broker
    idempotency: object = dataclasses.field(default_factory=NoIdempotency)


class WithGateway:
    """Put the gateway into the environ, where app modules find it."""

    def __init__(self, application, gateway):
        self.application = application
        self.gateway = gateway

    def __call__(self, environ, start_response):
        environ[GATEWAY_KEY] = self.gateway
        return self.application(environ, start_response)


class GatewayErrorMiddleware(ErrorMiddleware):
    """Paste's error page; the log gets the traceback, never the environ.

    Paste's own report writes every environ key to wsgi.errors: the client's
    Authorization header and cookies, and the settings with the session
    secret and the broker password.
    """

    def exception_handler(self, exc_info, environ):
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        log.error("error handling %s %s", environ.get("REQUEST_METHOD"), path, exc_info=exc_info)
        if self.debug_mode:
            return super().exception_handler(exc_info, environ)
        return error_template("", self.error_message, "")


class SessionsByScheme:
    """Beaker fixes ``secure`` per middleware: use a Secure-cookie one for https requests.

    An ini that sets ``session.secure = true`` gets Secure cookies always.
    A session store that fails while Beaker saves the session is answered 503.
    """

    def __init__(self, application, options):
        self.plain = SessionMiddleware(application, options)
        self.tls = SessionMiddleware(application, {**options, "session.secure": True})

    def __call__(self, environ, start_response):
        sessions = self.tls if environ.get("wsgi.url_scheme") == "https" else self.plain
        try:
            return sessions(environ, start_response)
        except SessionStoreUnavailable as error:  # Beaker saves the session as the response starts
            log.warning("session store unavailable saving the session of %s", environ.get("PATH_INFO"))
            response = error_response(error, Request(environ), page=plain_error_page)
            return response(environ, start_response)


def make_broker(settings):
    return Broker(
        settings.amqp_url,
        publish_timeout=settings.publish_timeout,
        connect_timeout=settings.connect_timeout,
        heartbeat=settings.heartbeat,
        reconnect_max_delay=settings.reconnect_max_delay,
        retry_after=settings.retry_after,
        history=settings.history,
        publisher=settings.publisher,
    )


def make_app(settings, broker=None):
    """RequestObserver -> ErrorMiddleware -> HTTPExceptionHandler -> Beaker -> hardened urlparser."""
    broker = broker or make_broker(settings)
    atexit.register(broker.close)
    idempotency = make_store(settings)
    atexit.register(idempotency.close)
    gateway = Gateway(settings, broker, idempotency)
    directory = AppDirectory(settings.apps_directory)
    application = MethodNotAllowedDocument(directory)
    application = WithGateway(application, gateway)
    application = SessionsByScheme(application, settings.session)
    application = HTTPExceptionHandler(application)
    application = GatewayErrorMiddleware(application, debug=settings.development, error_message=ERROR_MESSAGE)
    application = RequestObserver(application, directory.apps, log_access=settings.access_log)
    application.gateway = gateway
    return application


def main(global_config, **settings):
    """The ``paste.app_factory`` entry point."""
    return make_app(parse_settings(settings, here=global_config.get("here", ".")))
