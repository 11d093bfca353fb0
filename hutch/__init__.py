"""Hutch: an HTTP gateway to RabbitMQ (broadcast, notify, request/response)."""

__version__ = "0.3.0"


def main(global_config, **settings):
    """``paste.app_factory`` entry point; see ``hutch.app``."""
    from .app import main as factory

    return factory(global_config, **settings)
