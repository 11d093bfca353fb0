"""The guard of tests/unit/conftest.py: a connection to RabbitMQ or Redis fails a unit test."""

import socket

import pytest


@pytest.mark.parametrize("port", [5672, 6379])
def test_connecting_to_a_broker_fails_the_unit_test(port):
    with pytest.raises(pytest.fail.Exception, match="move it out of tests/unit"):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_other_connections_are_left_alone():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
