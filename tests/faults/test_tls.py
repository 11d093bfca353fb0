"""The gateway over ``amqps://``, against a private RabbitMQ node with a real TLS listener.

The node's certificate is made at test time and signed by a throw-away CA
(``harness.certs``); the gateway's URL names that CA in pika's
``ssl_options`` query, so the server is verified by chain and by name
(127.0.0.1 is in the certificate), as a production ``amqps://`` URL does
with a real CA.  Every test runs on both paths (``publisher = direct`` and
``pika``), through the WSGI stack (WebTest).  A wrong CA or a name the
certificate does not carry must be a clean 503, never a hang; connections
the broker cuts (``rabbitmqctl close_all_connections``) fail the calls in
flight with 503 and the gateway serves again on its own.
"""

import contextlib
import threading
import time
import uuid

import pika
import pytest
import webtest

from harness.tls_node import TlsNode, amqps_url
from hutch.settings import parse_settings
from hutch.web.app import make_app

from ..functional.conftest import REPOSITORY_APPS
from ..functional.helpers import PUBLISHERS
from .amqp_tools import delete_exchange_and_queues
from .responders import Responder, echo

pytestmark = [pytest.mark.broker]

CONNECT_TIMEOUT = 2.0
NO_HANG = CONNECT_TIMEOUT + 2.0 + 2.0  # the broker client's GRACE, plus a margin
RECOVERY = 20.0


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    with TlsNode(tmp_path_factory.mktemp("tls")) as node:
        yield node


@contextlib.contextmanager
def gateway(amqp_url, publisher, **raw):
    """The WSGI stack on ``amqp_url`` with ``publisher``; its broker client closed afterwards."""
    raw = {
        "apps_directory": str(REPOSITORY_APPS),
        "session.secret": "tls-tests-secret-0123456789abcdef",
        "auth": "off",
        "amqp_url": amqp_url,
        "publisher": publisher,
        "connect_timeout": str(CONNECT_TIMEOUT),
        "publish_timeout": "5",
        "retry_after": "3",
        **raw,
    }
    app = make_app(parse_settings(raw))
    assert app.gateway.broker.direct is (publisher == "direct")
    try:
        yield app, webtest.TestApp(app, lint=True)
    finally:
        app.gateway.broker.close()


@pytest.fixture(scope="module", params=PUBLISHERS)
def publisher(request):
    return request.param


@pytest.fixture(scope="module")
def client(tls_node, publisher):
    with gateway(tls_node.url, publisher) as (_app, client):
        yield client


@pytest.fixture
def names(tls_node):
    """Unique exchange names, deleted (with the queues named after them) on the node afterwards."""
    created = []

    def make(prefix):
        created.append(f"t.{prefix}.{uuid.uuid4().hex[:8]}")
        return created[-1]

    yield make
    for name in created:
        delete_exchange_and_queues(tls_node.plain_url, name)


@pytest.fixture
def admin(tls_node):
    connection = pika.BlockingConnection(pika.URLParameters(tls_node.plain_url))
    yield connection.channel()
    connection.close()


def get(channel, queue, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return properties, body
        time.sleep(0.05)
    raise AssertionError(f"no message in {queue!r} within {timeout} s")


def test_broadcast_is_202_routed_false_then_true(tls_node, client, admin, names):
    exchange = names("tlsb")
    response = client.post(f"/broadcast/{exchange}", b"nobody", content_type="text/plain", status=202)
    assert response.json["routed"] is False
    queue = admin.queue_declare("", exclusive=True).method.queue
    admin.queue_bind(queue, exchange)
    response = client.post(f"/broadcast/{exchange}", b"over tls", content_type="text/plain", status=202)
    assert response.json["routed"] is True
    properties, body = get(admin, queue)
    assert body == b"over tls"
    assert properties.message_id == response.json["message_id"]


def test_notify_is_409_unroutable_then_202_with_a_queue(client, admin, names):
    exchange = names("tlsn")
    assert client.post(f"/notify/{exchange}", b"lost?", status=409).json["error"] == "unroutable"
    client.put(f"/notify/{exchange}/queues/archive", status=201)
    client.post(f"/notify/{exchange}", b"kept", content_type="text/plain", status=202)
    properties, body = get(admin, f"{exchange}.archive")
    assert body == b"kept"
    assert properties.delivery_mode == 2


def test_rpc_call_is_answered_by_a_responder_over_tls(tls_node, client, names):
    exchange = names("tlsr")
    responder = Responder(tls_node.url, exchange, "echo", echo).start()
    try:
        response = client.post(f"/rpc/{exchange}/echo", b"ping", content_type="text/plain", status=200)
        assert response.body == b"ping"
        assert responder.requests == [b"ping"]
    finally:
        responder.stop()


def test_the_gateways_connections_are_tls(tls_node, client, publisher, names):
    client.post(f"/broadcast/{names('tlsc')}", b"", status=202)
    connections = tls_node.tls_connections()  # a responder's closing connection may have no name
    hutch = {name: ssl for name, ssl in connections.items() if name and name.startswith("hutch pid")}
    assert any(name.endswith("publisher") for name in hutch) is (publisher == "direct"), hutch
    assert hutch and all(ssl == (True, "tlsv1.3") for ssl in hutch.values()), hutch


@pytest.mark.parametrize("mismatch", ["another CA", "another name"])
def test_a_server_that_fails_verification_is_503_without_hanging(tls_node, publisher, names, mismatch):
    if mismatch == "another CA":
        url = amqps_url(tls_node.tls_port, cafile=tls_node.other_ca)
    else:
        url = amqps_url(tls_node.tls_port, cafile=tls_node.files.cafile, server_hostname="elsewhere.example")
    exchange = names("tlsv")
    with gateway(url, publisher) as (_app, client):
        for path in (f"/broadcast/{exchange}", f"/rpc/{exchange}/echo"):
            started = time.monotonic()
            response = client.post(path, b"x", status=503)
            assert time.monotonic() - started < NO_HANG, path
            assert response.headers["Retry-After"] == "3"


def test_killed_connections_fail_calls_in_flight_with_503_then_it_serves_again(tls_node, publisher, names):
    silent, service, fanout = names("tlsk"), names("tlse"), names("tlsf")

    def hold(channel, method, properties, body):  # a responder that never answers nor acks
        pass

    holder = Responder(tls_node.url, silent, "hold", hold).start()
    answers = []
    with gateway(tls_node.url, publisher, rpc_timeout="20", rpc_max_timeout="30") as (_app, client):
        client.post(f"/broadcast/{fanout}", b"warm", status=202)  # both connections open

        def call():
            started = time.monotonic()
            response = client.post(f"/rpc/{silent}/hold", b"held", expect_errors=True)
            retry_after = response.headers.get("Retry-After")
            answers.append((response.status_int, retry_after, started, time.monotonic()))

        threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        killed = time.monotonic()
        tls_node.broker.ctl("close_all_connections", "hutch tls fault test")
        done = time.monotonic()
        for thread in threads:
            thread.join(NO_HANG + 20)
        holder.stop()
        assert len(answers) == 4, "a call in flight is still waiting"
        assert all(status == 503 and retry == "3" for status, retry, *_ in answers), answers
        assert all(killed <= ended <= done + 3.0 for *_, ended in answers), (answers, killed, done)

        responder = Responder(tls_node.url, service, "echo", echo, reconnect=True).start()
        try:
            deadline = time.monotonic() + RECOVERY
            seen = []
            while time.monotonic() < deadline:
                broadcast = client.post(f"/broadcast/{fanout}", b"again", expect_errors=True).status_int
                rpc = client.post(f"/rpc/{service}/echo", b"again", expect_errors=True)
                seen.append((broadcast, rpc.status_int))
                if broadcast == 202 and rpc.status_int == 200 and rpc.body == b"again":
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"no recovery within {RECOVERY} s: {seen}")
        finally:
            responder.stop()
