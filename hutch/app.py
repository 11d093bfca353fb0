"""The WSGI factory: one function builds the whole stack from the ini."""

import atexit
import dataclasses
import logging

from beaker.middleware import SessionMiddleware
from paste.exceptions.errormiddleware import ErrorMiddleware
from paste.httpexceptions import HTTPExceptionHandler

from .amqp.client import Broker
from .dispatch import AppDirectory
from .settings import parse_settings
from .web import GATEWAY_KEY

log = logging.getLogger(__name__)

ERROR_MESSAGE = "The gateway failed to handle the request; the error is in its log."


@dataclasses.dataclass(frozen=True)
class Gateway:
    """What every app module needs: the parsed settings and the broker."""

    settings: object
    broker: Broker


class WithGateway:
    """Put the gateway into the environ, where app modules find it."""

    def __init__(self, application, gateway):
        self.application = application
        self.gateway = gateway

    def __call__(self, environ, start_response):
        environ[GATEWAY_KEY] = self.gateway
        return self.application(environ, start_response)


def make_broker(settings):
    return Broker(
        settings.amqp_url,
        publish_timeout=settings.publish_timeout,
        connect_timeout=settings.connect_timeout,
        heartbeat=settings.heartbeat,
        reconnect_max_delay=settings.reconnect_max_delay,
        retry_after=settings.retry_after,
    )


def make_app(settings, broker=None):
    """ErrorMiddleware -> HTTPExceptionHandler -> Beaker -> hardened urlparser."""
    broker = broker or make_broker(settings)
    atexit.register(broker.close)
    gateway = Gateway(settings, broker)
    application = AppDirectory(settings.apps_directory)
    application = WithGateway(application, gateway)
    application = SessionMiddleware(application, settings.session)
    application = HTTPExceptionHandler(application)
    application = ErrorMiddleware(application, debug=settings.development, error_message=ERROR_MESSAGE)
    application.gateway = gateway
    return application


def main(global_config, **settings):
    """The ``paste.app_factory`` entry point."""
    return make_app(parse_settings(settings, here=global_config.get("here", ".")))
