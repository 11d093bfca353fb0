"""API keys, permissions per idiom and exchange, 401/403, nothing published, nothing logged."""

import base64
import json
import logging
import os
import stat
import uuid

import pytest

import hutch.auth.policy
from harness.amqp import BROADCAST, NOTIFY, BoundQueue, Responder, delete, exchange_exists, queue_depth
from hutch.settings import ConfigurationError, parse_settings

from .conftest import KEYS, ROOT, basic, bearer, raw_settings
from .wsgi import assert_no_traceback, call

CHALLENGE = 'Bearer realm="hutch", Basic realm="hutch"'


def parse(**overrides):
    return parse_settings(raw_settings(**overrides), here=str(ROOT))


def parse_key_file(path):
    """Settings whose only keys come from ``path``."""
    return parse_settings({"session.secret": "s" * 32, "auth": "keys", "auth.key_file": str(path)})


def post(app, path, authorization=None, body=b"{}", headers=()):
    sent = [("Content-Type", "application/json"), *headers]
    if authorization is not None:
        sent.append(("Authorization", authorization))
    method = "PUT" if "/queues/" in path else "POST"
    result = call(app, method, path, sent, body)
    assert_no_traceback(result)
    return result


def error_code(result):
    assert result.header("Content-Type").startswith("application/json"), result.headers
    return json.loads(result.body)["error"]


@pytest.fixture
def cleanup():
    """Names of exchanges and queues to delete after the test, whoever declared them."""
    exchanges, queues = [], []
    yield exchanges, queues
    delete(exchanges=exchanges, queues=queues)


# --- start-up: the ini's auth settings ----------------------------------------


def test_auth_must_be_set_explicitly():
    with pytest.raises(ConfigurationError, match="set auth explicitly"):
        parse(auth=None)


@pytest.mark.parametrize("mode", ["", "on", "true", "none", "Keys"])
def test_auth_mode_is_keys_or_off(mode):
    with pytest.raises(ConfigurationError, match="auth"):
        parse(auth=mode)


@pytest.mark.parametrize(
    "permissions",
    [
        "notify",  # no pattern
        "notify:",  # empty pattern
        "publish:patient.*",  # no such idiom
        "*:patient.*",
        "rpc:api",  # rpc needs exchange/routing_key
        "rpc:api/x/y",
        "notify:patient/x",  # only rpc has a routing key
        "notify:pat$ient",
        "notify:" + "x" * 128,
        "notify:patient.* bogus",  # every word is a permission
        "",
    ],
)
def test_malformed_permissions_stop_the_gateway_at_start_up(permissions):
    with pytest.raises(ConfigurationError, match="auth"):
        parse(**{"auth.permissions.api": permissions})


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"auth.key.api": "short"}, "16-256"),
        ({"auth.key.api": "has a space in the secret 0123"}, "16-256"),
        ({"auth.permissions.api": None}, "needs both"),
        ({"auth.key.api": None}, "needs both"),
        ({"auth.key.api": KEYS["admin"][0]}, "share a secret"),
        ({"auth.key.bad/name": "x" * 20, "auth.permissions.bad/name": "*"}, "key name"),
        ({"auth.keys.api": "x" * 20}, "unknown setting auth.keys.api"),
    ],
)
def test_malformed_keys_stop_the_gateway_at_start_up(overrides, match):
    with pytest.raises(ConfigurationError, match=match):
        parse(**overrides)


def test_the_policy_is_immutable_and_shows_no_secret():
    settings = parse()
    with pytest.raises(AttributeError):
        settings.auth.keys = ()
    assert isinstance(settings.auth.keys, tuple)
    with pytest.raises(AttributeError):
        settings.auth.keys[0].permissions = ()
    text = repr(settings.auth)
    for secret, _ in KEYS.values():
        assert secret not in text


def test_key_file_is_created_private_with_an_admin_key_and_reused(tmp_path):
    path = tmp_path / "var" / "api-keys"
    first = parse_key_file(path).auth
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
    assert [(words[0], words[2:]) for words in lines] == [("admin", ["*"])]
    secret = lines[0][1]
    assert len(secret) >= 32
    admin = first.authenticate(f"Bearer {secret}")
    assert admin is not None and admin.name == "admin"
    assert admin.allows("rpc", "any/thing") and admin.allows("register", "x")
    second = parse_key_file(path).auth
    assert second.authenticate(f"Bearer {secret}").name == "admin"
    assert path.read_text().split()[-2] == secret  # not regenerated


def test_key_file_lines_are_keys(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text("# ops keys\n\nlab lab-secret-key-0123456789 notify:lab.* rpc:lab/*\n")
    path.chmod(0o640)
    policy = parse_key_file(path).auth
    key = policy.authenticate("Bearer lab-secret-key-0123456789")
    assert key.name == "lab"
    assert key.allows("notify", "lab.results") and key.allows("rpc", "lab/get")
    assert not key.allows("broadcast", "lab.results")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("lab lab-secret-key-0123456789\n", "line 1"),
        ("# c\nlab lab-secret-key-0123456789 notify\n", "line 2"),
        ("admin other-secret-key-0123456789 *\n", "defined twice"),  # admin is also in the ini
    ],
)
def test_malformed_key_file_stops_the_gateway(tmp_path, content, match):
    path = tmp_path / "api-keys"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match=match):
        parse(**{"auth.key_file": str(path)})


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text("lab lab-secret-key-0123456789 *\n")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="other users"):
        parse_key_file(path)


# --- permission patterns ----------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "idiom", "resource", "allowed"),
    [
        ("*", "rpc", "api/add", True),
        ("*", "watch", "scores", True),
        ("notify:patient.*", "notify", "patient.admitted", True),
        ("notify:patient.*", "notify", "patient.", True),
        ("notify:patient.*", "notify", "patients", False),
        ("notify:patient.*", "register", "patient.admitted", False),  # registering is its own idiom
        ("notify:patient.*", "broadcast", "patient.admitted", False),
        ("register:patient.*", "register", "patient.admitted", True),
        ("register:patient.*", "notify", "patient.admitted", False),
        ("rpc:api/*", "rpc", "api/add_patient", True),
        ("rpc:api/*", "rpc", "api.v2/add_patient", False),
        ("rpc:api*/*", "rpc", "api.v2/add", True),
        ("rpc:*/add_*", "rpc", "billing/add_invoice", True),
        ("rpc:*/add_*", "rpc", "billing/delete", False),
        ("rpc:*", "rpc", "anything/at_all", True),
        ("broadcast:*", "broadcast", "score_updates", True),
        ("broadcast:score_*", "broadcast", "score_updates", True),
        ("broadcast:score_*", "broadcast", "scores", False),
        ("broadcast:score.updates", "broadcast", "scoreXupdates", False),  # '.' is literal
        ("watch:*", "watch", "score_updates", True),
        ("watch:*", "broadcast", "score_updates", False),
    ],
)
def test_permission_patterns(permission, idiom, resource, allowed):
    assert hutch.auth.policy.parse_permission(permission).allows(idiom, resource) is allowed


# --- requests: 401 and 403 ------------------------------------------------------------

PROTECTED = [
    ("POST", "/broadcast/t.score_x.1"),
    ("POST", "/notify/t.patient.1"),
    ("PUT", "/notify/t.patient.1/queues/billing"),
    ("POST", "/rpc/t.api.1/add_patient"),
]
BAD_CREDENTIALS = [
    None,
    "",
    "Bearer",
    "Bearer wrong-secret-key-0123456789",
    f"Bearer {KEYS['admin'][0]}x",
    f"Bearer {KEYS['admin'][0][:-1]}",
    f"bearer  {KEYS['admin'][0]} extra",
    f"Token {KEYS['admin'][0]}",
    f"Digest {KEYS['admin'][0]}",
    KEYS["admin"][0],
    basic("admin", secret="wrong-secret-key-0123456789"),
    "Basic " + base64.b64encode(f"patients:{KEYS['admin'][0]}".encode()).decode(),  # another key's secret
    "Basic " + base64.b64encode(f":{KEYS['admin'][0]}".encode()).decode(),
    "Basic " + base64.b64encode(KEYS["admin"][0].encode()).decode(),  # no colon
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"admin:\xff\xfe").decode(),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("authorization", BAD_CREDENTIALS)
def test_no_valid_key_is_401_with_a_challenge(stack, method, path, authorization):
    headers = [("Authorization", authorization)] if authorization is not None else []
    result = call(stack, method, "/" + path.lstrip("/"), headers, b"{}")
    assert result.status == 401, result.text
    assert error_code(result) == "unauthorized"
    assert [value for key, value in result.headers if key.lower() == "www-authenticate"] == [CHALLENGE]


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("patients", "/rpc/t.api.{}/add_patient"),
        ("patients", "/notify/t.patient.{}/queues/billing"),  # notify does not include register
        ("patients", "/notify/t.other.{}"),
        ("patients", "/broadcast/t.patient.{}"),
        ("registrar", "/notify/t.patient.{}"),
        ("api", "/rpc/t.api.{}/delete_patient"),
        ("api", "/rpc/t.other.{}/add_patient"),
        ("watcher", "/broadcast/t.score_x.{}"),
    ],
)
def test_a_key_without_the_permission_is_403(stack, key, path, cleanup):
    path = path.format(uuid.uuid4().hex[:8])
    exchange = path.split("/")[2]
    cleanup[0].append(exchange)
    for authorization in (bearer(key), basic(key)):
        result = post(stack, path, authorization)
        assert result.status == 403, result.text
        assert error_code(result) == "forbidden"
        assert result.header("WWW-Authenticate") is None
    assert not exchange_exists(exchange), "a refused request declared its exchange"


def test_auth_comes_before_the_body_is_read(stack):
    big = b"x" * (stack.gateway.settings.max_body_bytes + 1)
    assert post(stack, "/broadcast/t.score_x.1", None, body=big).status == 401
    assert post(stack, "/broadcast/t.score_x.1", bearer("api"), body=big).status == 403
    assert post(stack, "/broadcast/t.score_x.1", bearer("admin"), body=big).status == 413


def test_open_routes_need_no_key(stack):
    assert call(stack, "GET", "/health").status == 200
    assert call(stack, "GET", "/openapi.json", script_name="/gateway/openapi.json").status == 200


# --- allowed requests go through; refused ones publish nothing ---------------------


@pytest.mark.parametrize("credentials", [bearer, basic])
def test_keys_with_the_permission_publish(stack, unique_name, cleanup, credentials):
    notify_exchange, broadcast_exchange = unique_name("patient"), unique_name("score_x")
    cleanup[0].extend([notify_exchange, broadcast_exchange])
    with BoundQueue(notify_exchange, NOTIFY) as notified, BoundQueue(broadcast_exchange, BROADCAST) as scores:
        result = post(stack, f"/notify/{notify_exchange}", credentials("patients"), body=b'{"n":1}')
        assert result.status == 202, result.text
        assert notified.get()[2] == b'{"n":1}'
        result = post(stack, f"/broadcast/{broadcast_exchange}", credentials("patients"), body=b'{"s":2}')
        assert result.status == 202, result.text
        assert scores.get()[2] == b'{"s":2}'


def test_register_is_its_own_permission(stack, unique_name, cleanup):
    exchange = unique_name("patient")
    cleanup[0].append(exchange)
    cleanup[1].append(f"{exchange}.billing")
    path = f"/notify/{exchange}/queues/billing"
    assert post(stack, path, bearer("patients")).status == 403
    assert queue_depth(f"{exchange}.billing") is None
    assert post(stack, path, bearer("registrar")).status == 201
    assert queue_depth(f"{exchange}.billing") == 0


def test_rpc_permission_names_exchange_and_routing_key(stack, unique_name):
    exchange = unique_name("api")
    with Responder(exchange, "add_patient") as responder:
        result = post(stack, f"/rpc/{exchange}/add_patient", bearer("api"), body=b'{"name":"x"}')
        assert result.status == 200, result.text
        assert result.body == b'{"name":"x"}'
        assert post(stack, f"/rpc/{exchange}/add_patient", bearer("patients")).status == 403
        assert post(stack, f"/rpc/{exchange}/add_patient", None).status == 401
        assert len(responder.requests) == 1, "a refused call reached the responder"


def test_refused_requests_publish_nothing(stack, unique_name, cleanup):
    notify_exchange, broadcast_exchange = unique_name("patient"), unique_name("score_x")
    cleanup[0].extend([notify_exchange, broadcast_exchange])
    refused = [None, "Bearer wrong-secret-key-0123456789", bearer("registrar"), bearer("api")]
    with BoundQueue(notify_exchange, NOTIFY) as notified, BoundQueue(broadcast_exchange, BROADCAST) as scores:
        for authorization in refused:
            for exchange in (notify_exchange, broadcast_exchange):
                idiom = "notify" if exchange == notify_exchange else "broadcast"
                result = post(stack, f"/{idiom}/{exchange}", authorization, body=b"refused")
                assert result.status in (401, 403), result.text
        # A sentinel published after them: the queues hold it and nothing before it.
        sentinels = (("notify", notify_exchange, notified), ("broadcast", broadcast_exchange, scores))
        for idiom, exchange, queue in sentinels:
            assert post(stack, f"/{idiom}/{exchange}", bearer("admin"), body=b"sentinel").status == 202
            assert queue.get()[2] == b"sentinel"
            assert queue.get(timeout=0.2) is None


def test_auth_off_must_be_written_and_then_needs_no_key(build_stack, unique_name, cleanup):
    exchange = unique_name("anything")
    cleanup[0].append(exchange)
    open_stack = build_stack(auth="off")
    with BoundQueue(exchange, BROADCAST) as queue:
        assert post(open_stack, f"/broadcast/{exchange}", None, body=b"open").status == 202
        assert queue.get()[2] == b"open"


# --- secrets: compared in constant time, never logged ---------------------------------


def test_secrets_are_compared_as_fixed_length_digests_against_every_key(
    stack, monkeypatch, unique_name, cleanup
):
    """A plain ``==`` or an early exit would leak, through timing, which key (or how much of it) matched."""
    compared = []
    real = hutch.auth.policy.hmac.compare_digest

    class Spy:
        @staticmethod
        def compare_digest(a, b):
            compared.append((len(a), len(b)))
            return real(a, b)

    monkeypatch.setattr(hutch.auth.policy, "hmac", Spy)
    keys = len(stack.gateway.settings.auth.keys)
    exchange = unique_name("score_x")
    cleanup[0].append(exchange)
    for authorization in (bearer("admin"), "Bearer x", "Bearer " + "y" * 300, basic("watcher")):
        compared.clear()
        post(stack, f"/broadcast/{exchange}", authorization)
        assert len(compared) >= keys, f"{authorization[:12]}...: {len(compared)} comparisons for {keys} keys"
        assert set(compared) == {(32, 32)}


def test_failing_auth_logs_no_secret(stack, caplog):
    presented = "Bearer presented-secret-0123456789-zyx"
    wrong_basic = basic("admin", secret="presented-basic-secret-0123456789")
    forbidden = bearer("api")
    secrets = [
        "presented-secret-0123456789-zyx",
        "presented-basic-secret-0123456789",
        wrong_basic.split()[1],
        KEYS["api"][0],
        KEYS["admin"][0],
    ]
    with caplog.at_level(logging.DEBUG):
        results = [post(stack, "/broadcast/t.score_x.1", wrong) for wrong in (presented, wrong_basic)]
        results.append(post(stack, "/notify/t.patient.1", forbidden))
    assert [result.status for result in results] == [401, 401, 403]
    logged = caplog.text + "".join(result.errors for result in results)
    for result in results:
        logged += result.text  # the response itself echoes no credential either
    for secret in secrets:
        assert secret not in logged
