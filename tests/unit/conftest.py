"""Unit tests never reach a broker: a unit test that opens a connection to RabbitMQ or Redis fails.

Tests that need the real RabbitMQ or Redis belong in the folders whose markers say so
(``functional``, ``e2e``, ``security``...).
"""

import socket

import pytest

BROKER_PORTS = {5671: "RabbitMQ", 5672: "RabbitMQ", 5552: "RabbitMQ streams", 15672: "RabbitMQ management",
                6379: "Redis"}  # fmt: skip


def _port(address):
    return address[1] if isinstance(address, tuple) and len(address) >= 2 else None


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Fail the test at the connect call to a broker's port."""
    for name in ("connect", "connect_ex"):
        original = getattr(socket.socket, name)

        def guarded(sock, address, _original=original):
            service = BROKER_PORTS.get(_port(address))
            if service is not None:
                pytest.fail(f"a unit test connected to {service} at {address}: move it out of tests/unit")
            return _original(sock, address)

        monkeypatch.setattr(socket.socket, name, guarded)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for ``node-a``, the fake broker's host (``harness.certs``)."""
    from harness.certs import make_server_files

    return make_server_files(tmp_path_factory.mktemp("tls"), hosts=("node-a",), addresses=())


@pytest.fixture(params=["plain", "tls"])
def harness(request):
    """``harness(**options)``: a direct publisher on a fake socket (``test_direct_publisher.Harness``),
    stopped after the test; for the direct publisher's and the direct RPC's tests, which so run
    twice: over ``amqp://``, and over ``amqps://`` to a peer speaking real TLS (``fake_tls``)."""
    from .test_direct_publisher import Harness

    made = []
    if request.param == "tls":
        from .fake_tls import TlsFakeSocket, amqps_url, server_context

        files = request.getfixturevalue("tls_files")
        context = server_context(files)
        tls = {"url": amqps_url(files.cafile), "make_socket": lambda: TlsFakeSocket(context)}
    else:
        tls = {}

    def make(**options):
        made.append(Harness(**{**tls, **options}))
        return made[-1]

    yield make
    for each in made:
        each.publisher._stopping.set()
