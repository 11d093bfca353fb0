"""The real stack, built from ``test.ini``, against the real RabbitMQ."""

import pathlib
import sys

import pytest
import webtest
from paste.deploy import loadapp

from harness.amqp import Responder
from harness.push import SESSION_SECRET, DeliveryProcess, Receiver
from harness.redis_node import PrivateRedis
from hutch.settings import parse_settings
from hutch.web.app import make_app

from .helpers import AmqpAdmin

INI = pathlib.Path(__file__).with_name("test.ini")
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # the shared RabbitMQ, as test.ini says
REPOSITORY_APPS = pathlib.Path(__file__).resolve().parents[2] / "apps"


@pytest.fixture(scope="session")
def gateway_app():
    """One stack (one broker connection) for the whole run, as one mod_wsgi process has."""
    app = loadapp(f"config:{INI}")
    yield app
    app.gateway.broker.close()


@pytest.fixture
def settings(gateway_app):
    return gateway_app.gateway.settings


@pytest.fixture
def client(gateway_app):
    return webtest.TestApp(gateway_app, lint=True)


@pytest.fixture
def amqp():
    admin = AmqpAdmin()
    yield admin
    admin.close()


@pytest.fixture
def exchange(unique_name, amqp):
    """A fresh exchange name, deleted after the test whoever declared it."""
    name = unique_name()
    amqp.track(exchanges=[name])
    return name


@pytest.fixture
def responder(amqp):
    """Start ``Responder``s; stop them and delete their exchanges afterwards."""
    started = []

    def start(exchange, routing_key, handler=None):
        amqp.track(exchanges=[exchange])
        kwargs = {} if handler is None else {"handler": handler}
        service = Responder(exchange, routing_key, **kwargs).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def make_stack(tmp_path):
    """Build the stack from ``raw`` settings, over ``apps`` (file name -> source) in a temporary
    folder, or over the repository's apps when ``apps`` is None."""
    folder = tmp_path / "apps"
    folder.mkdir()
    stacks = []

    def build(apps=None, **raw):
        for filename, source in (apps or {}).items():
            (folder / filename).write_text(source)
        raw.setdefault("apps_directory", str(REPOSITORY_APPS if apps is None else folder))
        raw.setdefault("session.secret", "functional-tests-secret-0123456789abcdef")
        raw.setdefault("amqp_url", "amqp://guest:guest@127.0.0.1:5672/%2F")
        raw.setdefault("auth", "off")
        stack = make_app(parse_settings(raw))
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.gateway.broker.close()
    for name, module in list(sys.modules.items()):
        if name.startswith("hutch_apps.") and str(getattr(module, "__file__", "")).startswith(str(folder)):
            del sys.modules[name]


# --- push delivery and HTTP responders: a private Redis, a real delivery process, receivers ---


@pytest.fixture(scope="module")
def push_redis():
    with PrivateRedis(persistent=False) as node:
        yield node


PUSH_ALLOW = "http://127.0.0.1: https://"  # push_allow: the receivers listen on loopback


@pytest.fixture
def push_client(make_stack, push_redis):
    """The WSGI stack with push delivery on the private Redis, pushing to loopback receivers."""
    stack = make_stack(push_store=push_redis.url, push_allow=PUSH_ALLOW, **{"session.secret": SESSION_SECRET})
    return webtest.TestApp(stack, lint=True)


@pytest.fixture(scope="module")
def delivery(push_redis):
    process = DeliveryProcess(AMQP_URL, push_redis.url).start()
    yield process
    process.stop()
    if process.process.returncode not in (0, -15):
        print(process.log()[-5000:])


@pytest.fixture
def receivers():
    """An HTTP receiver (a real aiohttp server, ``harness.push.Receiver``) per call, answering as
    ``behaviour(received, count)`` says: a status, a tuple ``(status, body, headers)``, or
    ``("sleep", seconds, status)``; stopped after the test."""
    started = []

    def start(behaviour=None):
        receiver = Receiver(behaviour).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
