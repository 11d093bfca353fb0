"""A private RabbitMQ node with a TLS listener, for the TLS tests and benchmark.

The node (``private_broker.PrivateBroker``) gets a TLS listener besides its
plain one, with a server certificate for ``localhost`` and 127.0.0.1 made
at start by a throw-away CA (``certs``); ``url`` is an ``amqps://`` URL that
verifies the node against that CA (pika's ``ssl_options`` query), as a
production URL does with a real CA.  The plain listener is for the tests'
own administration.
"""

import urllib.parse

from .certs import make_ca, make_server_files
from .private_broker import PrivateBroker, free_ports


def amqps_url(port, **ssl_options):
    """An ``amqps://`` URL for 127.0.0.1:``port`` with pika's ``ssl_options`` query (a dict literal)."""
    query = urllib.parse.quote(repr({key: str(value) for key, value in ssl_options.items()}))
    return f"amqps://guest:guest@127.0.0.1:{port}/%2F?ssl_options={query}"


class TlsNode:
    """A private node with a TLS listener; ``url`` verifies it against the test CA."""

    def __init__(self, folder, prefix="hutch-tls"):
        self.files = make_server_files(folder)
        self.other_ca = make_ca(folder, name="another CA")[0]
        self.broker = PrivateBroker(prefix=prefix)
        taken = {self.broker.port, self.broker.dist_port}
        self.tls_port = next(port for port in free_ports(3) if port not in taken)
        self.broker.config = (
            f"listeners.ssl.default = {self.tls_port}\n"
            f"ssl_options.cacertfile = {self.files.cafile}\n"
            f"ssl_options.certfile = {self.files.certfile}\n"
            f"ssl_options.keyfile = {self.files.keyfile}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
        )
        self.url = amqps_url(self.tls_port, cafile=self.files.cafile)
        self.plain_url = self.broker.amqp_url  # the tests' own admin connection

    def tls_connections(self):
        """{connection name (None: unnamed): (ssl, ssl_protocol)} of the node's client connections."""
        return {
            connection["name"]: (connection["ssl"] == "true", connection["ssl_protocol"])
            for connection in self.broker.connections("ssl", "ssl_protocol")
        }

    def __enter__(self):
        self.broker.start()
        return self

    def __exit__(self, *exc):
        self.broker.stop()
        self.broker.cleanup()
