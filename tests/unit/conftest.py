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


@pytest.fixture
def harness():
    """``harness(**options)``: a direct publisher on a fake socket (``test_direct_publisher.Harness``),
    stopped after the test; for the direct publisher's and the direct RPC's tests."""
    from .test_direct_publisher import Harness

    made = []

    def make(**options):
        made.append(Harness(**options))
        return made[-1]

    yield make
    for each in made:
        each.publisher._stopping.set()
