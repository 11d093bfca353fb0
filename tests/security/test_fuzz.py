"""Hostile requests, fuzzed with hypothesis, against the full stack and the real broker.

Raw WSGI calls (response lint on, ErrorMiddleware active: a crash would
be a 500 page, not an exception).  Header values are latin-1 strings, as a
server hands them over, including CR/LF, NUL, non-ASCII and huge ones;
header names are HTTP tokens, turned into CGI names the way Apache and
mod_wsgi do.  Queues bound to the fuzzed exchanges, and an RPC responder,
catch every message the gateway publishes, and each one is checked against
the contract: only content_type, content_encoding, message_id,
correlation_id, timestamp, lower-cased headers, delivery_mode for notify
(and the gateway's own reply_to/expiration for RPC) -- never user_id, CC,
BCC or anything else a client asked for.
"""

import base64
import re
import string
import time
import uuid

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.amqp import BROADCAST, NOTIFY, BoundQueue, Responder, delete
from hutch.names import NAME

from .conftest import KEYS, basic, bearer
from .wsgi import Counter, assert_no_traceback, call, environ_key

MAX_BODY = 2048  # small, so fuzzed bodies cross it
RPC_MAX_TIMEOUT = 5
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
EXPECTED_STATUSES = {200, 201, 202, 400, 401, 403, 404, 405, 409, 411, 413, 503, 504}
HEADER_KEY = re.compile(r"[a-z0-9-]+")
FORBIDDEN_ATTEMPTS = [
    "User-Id",
    "Reply-To",
    "Delivery-Mode",
    "Expiration",
    "Priority",
    "Type",
    "App-Id",
    "Cluster-Id",
    "CC",
    "BCC",
    "X-Amqp-User-Id",
    "X-Amqp-Reply-To",
    "X-Amqp-Delivery-Mode",
    "X-Amqp-Expiration",
    "X-Amqp-Priority",
    "X-Amqp-Headers",
    "X-Amqp-Header",
    "X-Amqp-Property-User-Id",
    "Amqp-Header-CC",
]

# --- strategies -------------------------------------------------------------------------

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
LATIN1 = st.characters(max_codepoint=0xFF)
TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=16)
header_values = st.one_of(
    st.text(PRINTABLE, max_size=40),
    st.text(LATIN1, max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "a\r\nX-Injected: 1",
            "v\r\n\r\nbody",
            "x\nUser-Id: admin",
            "\x00",
            "\t",
            "caf\xe9",
            "\xff\xfe",
            "\x7f",
            "amq.rabbitmq.reply-to",
            "guest",
        ]
    ),
    st.builds(lambda char, n: char * n, st.sampled_from("aZ9 é\n"), st.integers(250, 260)),
    st.builds(lambda char, n: char * n, st.sampled_from("a\r"), st.integers(4090, 4100)),
    st.builds(lambda n: "H" * n, st.integers(10_000, 200_000)),
)
amqp_header_names = st.one_of(
    TOKEN,
    st.sampled_from(["CC", "BCC", "User-Id", "Reply-To", "x-match", "http_status", "", "-", "A-"]),
)
many_amqp_headers = st.integers(60, 70).map(lambda n: {f"X-Amqp-Header-H{i}": "v" for i in range(n)})
authorizations = st.one_of(
    st.sampled_from([bearer("admin"), basic("admin"), bearer("patients"), bearer("api"), None, ""]),
    st.text(LATIN1, max_size=60),
    st.builds(lambda text: "Bearer " + text, st.text(LATIN1, max_size=60)),
    st.builds(lambda text: "Basic " + text, st.text(LATIN1, max_size=60)),
)
bodies = st.one_of(st.binary(max_size=64), st.binary(min_size=MAX_BODY - 2, max_size=MAX_BODY + 2))


def as_path_info(text):
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


# A path arrives percent-decoded, as latin-1 code points for its bytes: a UTF-8 URL's bytes here.
# (Bytes that are not UTF-8 are test_a_path_that_is_not_utf8_is_not_a_crash's business.)
UTF8_PATH_TEXT = st.text(max_size=12).map(
    lambda text: text.encode("utf-8", "surrogatepass").decode("latin-1")
)
invalid_names = st.one_of(
    UTF8_PATH_TEXT.filter(lambda text: "/" not in text and not NAME.fullmatch(text)),
    st.sampled_from(
        ["..", ".", "%2e%2e", "a b", as_path_info("é"), "a" * 128, "x" * 300, "amq.fanout", "amq.direct"]
    ),
)


def header_set(names, values):
    """Headers keyed by the CGI name a server would give them (later duplicates win, as in Apache)."""
    return st.dictionaries(names, values, max_size=8).map(by_environ_key)


def by_environ_key(headers):
    return {environ_key(name): (name, value) for name, value in headers.items()}


# --- the broker side: exchanges whose every message is caught ------------------------------


class Targets:
    """The exchanges the fuzzer may hit, a queue on each, and an echoing RPC responder."""

    def __init__(self):
        hexa = uuid.uuid4().hex[:8]
        self.broadcast = f"t.fzb.{hexa}"
        self.notify = f"t.fzn.{hexa}"
        self.rpc = f"t.fzr.{hexa}"
        self.missing = f"t.fzm.{hexa}"  # never declared: rpc answers 503 at once
        self.consumers = ("c1", "c2")
        self.queues = {
            "broadcast": BoundQueue(self.broadcast, BROADCAST),
            "notify": BoundQueue(self.notify, NOTIFY),
        }
        self.responder = Responder(self.rpc, "echo").start()
        self.rpc_seen = 0

    def close(self):
        for queue in self.queues.values():
            queue.close()
        self.responder.stop()
        exchanges = (self.broadcast, self.notify, self.rpc)
        queues = [f"{exchange}.{consumer}" for exchange in exchanges for consumer in self.consumers]
        delete(exchanges=[self.broadcast, self.notify, self.rpc, self.missing], queues=queues)

    def published(self):
        """Every message published since the last call: (idiom, properties, body)."""
        messages = []
        for idiom, queue in self.queues.items():
            while (message := queue.get(timeout=0)) is not None:
                messages.append((idiom, message[1], message[2]))
        requests = self.responder.requests[self.rpc_seen :]
        self.rpc_seen += len(requests)
        messages.extend(("rpc", properties, body) for properties, body in requests)
        return messages


@pytest.fixture(scope="module")
def targets():
    targets = Targets()
    yield targets
    targets.close()


@pytest.fixture(scope="module")
def fuzz_stack(build_stack):
    return build_stack(max_body_bytes=str(MAX_BODY), rpc_max_timeout=str(RPC_MAX_TIMEOUT))


def check_contract(idiom, properties, fanout_to_rpc=False):
    """What any published message may carry, whatever the request was."""
    assert properties.user_id is None
    assert properties.app_id in (None, "hutch-dashboard")  # the dashboard's form says who sent it
    assert properties.type is None and properties.cluster_id is None
    assert properties.priority is None
    assert isinstance(properties.content_type, str) and properties.content_type
    assert isinstance(properties.message_id, str) and properties.message_id
    assert abs(properties.timestamp - time.time()) < 120
    for name, value in (properties.headers or {}).items():
        assert HEADER_KEY.fullmatch(name), f"header name {name!r} is not a lower-cased token"
        assert isinstance(value, (str, bytes))
    for text in (properties.content_type, properties.content_encoding, properties.correlation_id):
        assert text is None or (text.isascii() and text.isprintable())
    if idiom == "rpc":
        assert properties.reply_to.startswith(DIRECT_REPLY_TO + ".")  # the broker's form of it
        assert 0 < int(properties.expiration) <= RPC_MAX_TIMEOUT * 1000
        assert properties.delivery_mode is None
    else:
        assert properties.reply_to is None and properties.expiration is None
        assert properties.delivery_mode == (2 if idiom == "notify" else None)


# --- 1: anything at all: never a 500, never a traceback, never a smuggled property -------------


def paths(targets):
    any_exchange = st.one_of(
        st.sampled_from([targets.broadcast, targets.notify, targets.rpc, "amq.fanout", "amq.direct"]),
        invalid_names,
    )
    rpc_exchange = st.one_of(st.sampled_from([targets.rpc, targets.missing, "amq.direct"]), invalid_names)
    routing_key = st.one_of(st.sampled_from(["echo", "nobody"]), invalid_names)
    consumer = st.one_of(st.sampled_from(targets.consumers), invalid_names)
    segment = st.one_of(invalid_names, st.sampled_from(["queues", "", "..", "events.py", "__init__"]))
    first = st.sampled_from(
        ["broadcast", "notify", "rpc", "health", "openapi.json", "dashboard", "static", ""]
    )
    return st.one_of(
        st.builds("/broadcast/{}".format, any_exchange),
        st.builds("/notify/{}".format, any_exchange),
        st.builds("/notify/{}/queues/{}".format, any_exchange, consumer),
        st.builds("/rpc/{}/{}".format, rpc_exchange, routing_key),
        st.sampled_from(["/health", "/openapi.json", "/", "", "/broadcast", "/notify/", "/rpc//x", "//"]),
        st.builds(
            lambda head, rest, slash: "/" + "/".join([head, *rest]) + slash,
            st.one_of(first, segment),
            st.lists(segment, max_size=4),
            st.sampled_from(["", "/"]),
        ),
    ).filter(lambda path: not path.startswith("/events"))  # an SSE stream is long-lived by design


def any_request(targets):
    methods = st.one_of(
        st.sampled_from(
            ["POST", "POST", "POST", "PUT", "GET", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE"]
        ),
        st.text(string.ascii_uppercase, min_size=1, max_size=8),
    )
    other_headers = header_set(
        st.one_of(
            st.sampled_from(
                [
                    "Content-Type",
                    "Content-Encoding",
                    "Idempotency-Key",
                    "X-Correlation-Id",
                    "X-Timeout",
                    "Transfer-Encoding",
                    "Cookie",
                    "Last-Event-ID",
                    *FORBIDDEN_ATTEMPTS,
                ]
            ),
            TOKEN,
        ),
        header_values,
    )
    amqp_headers = st.one_of(
        header_set(amqp_header_names.map(lambda name: "X-Amqp-Header-" + name), header_values),
        many_amqp_headers.map(by_environ_key),
    )
    # Apache answers 400 itself for a Content-Length that is not a number (test_limits.py)
    content_length = st.one_of(st.none(), st.sampled_from(["0", "1", str(MAX_BODY + 1), "99999999999"]))
    return st.fixed_dictionaries(
        {
            "method": methods,
            "path": paths(targets),
            "authorization": authorizations,
            "headers": other_headers,
            "amqp_headers": amqp_headers,
            "content_length": content_length,
            "body": bodies,
        }
    )


def test_fuzzed_requests_never_crash_nor_smuggle(fuzz_stack, targets):
    @settings(FUZZ, max_examples=2500)
    @given(request=any_request(targets))
    def run(request):
        headers = list(request["headers"].values()) + list(request["amqp_headers"].values())
        if request["authorization"] is not None:
            headers.append(("Authorization", request["authorization"]))
        if request["content_length"] is not None:
            headers.append(("Content-Length", request["content_length"]))
        result = call(fuzz_stack, request["method"], request["path"], headers, request["body"])
        Counter.fuzz(result)
        assert result.status in EXPECTED_STATUSES, f"{result.status} {result.text[:500]}"
        assert_no_traceback(result)
        if (
            result.status >= 400
            and request["method"] != "HEAD"
            and not request["path"].startswith("/dashboard")
        ):
            assert result.header("Content-Type").startswith("application/json"), result.headers
        for idiom, properties, _ in targets.published():
            Counter.published += 1
            assert result.status in (200, 202), f"{result.status} but a message was published"
            check_contract(idiom, properties)

    run()


# --- 2: valid routes: exactly the allowed headers cross, or the request is refused ------------


def publish_request():
    mapped = st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": header_values,
            "Content-Encoding": header_values,
            "Idempotency-Key": header_values,
            "X-Correlation-Id": header_values,
        },
    )
    return st.fixed_dictionaries(
        {
            "idiom": st.sampled_from(["broadcast", "notify", "rpc"]),
            "mapped": mapped,
            "amqp_headers": st.one_of(
                st.dictionaries(amqp_header_names, header_values, max_size=8).map(
                    lambda d: {f"X-Amqp-Header-{k}": v for k, v in d.items()}
                ),
                many_amqp_headers,
            ),
            "attempts": st.dictionaries(st.sampled_from(FORBIDDEN_ATTEMPTS), header_values, max_size=4),
            "authorization": st.sampled_from([bearer("admin"), basic("admin")]),
            "body": bodies,
        }
    )


def acceptable(value, limit):
    return value.isascii() and value.isprintable() and len(value) <= limit


def expected_outcome(request):
    """What the contract allows: (statuses, headers to send, expected properties or None if refused)."""
    sent = {}  # CGI name -> (header, value): what the server would pass on
    for group in ("attempts", "amqp_headers", "mapped"):
        for name, value in request[group].items():
            sent[environ_key(name)] = (name, value)
    amqp = {}
    for key, (_, value) in sent.items():
        if key.startswith("HTTP_X_AMQP_HEADER_"):
            amqp[key[len("HTTP_X_AMQP_HEADER_") :].replace("_", "-").lower()] = value
    mapped = {name: sent[environ_key(name)][1] for name in request["mapped"]}
    refusals = set()
    if (
        "" in amqp
        or len(amqp) > 64
        or not all(acceptable(value, 4096) for value in amqp.values())
        or not all(acceptable(value, 255) for value in mapped.values() if value)
    ):
        refusals.add(400)
    if len(request["body"]) > MAX_BODY:
        refusals.add(413)  # which of 400 and 413 wins when both apply, the contract does not say
    if refusals:
        return refusals, list(sent.values()), None
    expected = {
        "content_type": mapped.get("Content-Type") or "application/octet-stream",
        "content_encoding": mapped.get("Content-Encoding") or None,
        "message_id": mapped.get("Idempotency-Key") or None,
        "correlation_id": mapped.get("X-Correlation-Id") or None,
        "headers": amqp,
    }
    return {200 if request["idiom"] == "rpc" else 202}, list(sent.values()), expected


def test_fuzzed_headers_cross_exactly_as_the_contract_says(fuzz_stack, targets):
    @settings(FUZZ, max_examples=2000)
    @given(request=publish_request())
    def run(request):
        statuses, headers, expected = expected_outcome(request)
        exchange = getattr(targets, request["idiom"])
        path = f"/rpc/{exchange}/echo" if request["idiom"] == "rpc" else f"/{request['idiom']}/{exchange}"
        headers.append(("Authorization", request["authorization"]))
        result = call(fuzz_stack, "POST", path, headers, request["body"])
        Counter.fuzz(result)
        assert_no_traceback(result)
        assert result.status in statuses, f"expected {statuses}, got {result.status} {result.text[:300]}"
        published = targets.published()
        if expected is None:
            assert published == [], "a refused request published a message"
            return
        assert len(published) == 1, published
        idiom, properties, body = published[0]
        Counter.published += 1
        assert idiom == request["idiom"] and body == request["body"]
        check_contract(idiom, properties)
        assert properties.content_type == expected["content_type"]
        assert properties.content_encoding == expected["content_encoding"]
        assert properties.message_id == (expected["message_id"] or properties.message_id)
        assert re.fullmatch(r"[0-9a-f]{32}", properties.message_id) or expected["message_id"]
        if idiom == "rpc":
            assert properties.correlation_id and properties.correlation_id != expected["correlation_id"]
            assert result.body == request["body"]
            echoed = {
                key[len("x-amqp-header-") :].lower(): value
                for key, value in result.headers
                if key.lower().startswith("x-amqp-header-")
            }
            assert echoed == {name.replace("_", ""): value for name, value in expected["headers"].items()}
        else:
            assert properties.correlation_id == expected["correlation_id"]
        assert {
            k: v.decode() if isinstance(v, bytes) else v for k, v in (properties.headers or {}).items()
        } == (expected["headers"])

    run()


# --- 3: credentials: only the whole secret of a key with the permission gets through ---------


def mutate(text, position, char, how):
    i = position % (len(text) + 1)
    return {
        "insert": text[:i] + char + text[i:],
        "delete": text[:i] + text[i + 1 :],
        "replace": text[:i] + char + text[i + 1 :],
        "swapcase": text.swapcase(),
        "pad": f" {text}\t",
    }[how]


def credentials():
    valid = st.sampled_from([form(name) for name in KEYS for form in (bearer, basic)])
    hows = st.sampled_from(["insert", "delete", "replace", "swapcase", "pad"])
    mutated = st.builds(mutate, valid, st.integers(0, 80), LATIN1, hows)
    return st.one_of(valid, valid, mutated, mutated, authorizations)


def proves(header, name):
    """Does ``header`` hold key ``name``'s whole secret, as a Bearer token or Basic name:secret?"""
    secret = KEYS[name][0]
    for word in header.split():
        if word == secret:
            return True
        try:
            if base64.b64decode(word, validate=True) == f"{name}:{secret}".encode():
                return True
        except ValueError:
            continue
    return False


def test_fuzzed_credentials_never_pass_without_a_whole_secret(fuzz_stack, targets):
    @settings(FUZZ, max_examples=1000)
    @given(authorization=credentials())
    def run(authorization):
        headers = [("Authorization", authorization)] if authorization is not None else []
        result = call(fuzz_stack, "POST", f"/broadcast/{targets.broadcast}", headers, b"credentials")
        Counter.fuzz(result)
        assert result.status in (202, 401, 403), result.text
        published = targets.published()
        Counter.published += len(published)
        if result.status == 202:
            assert proves(authorization, "admin"), "a request without the admin secret was let through"
            assert len(published) == 1
        else:
            assert published == []
        if result.status == 403:
            assert any(proves(authorization, name) for name in KEYS if name != "admin")
        if result.status == 401:
            assert result.header("WWW-Authenticate") == 'Bearer realm="hutch", Basic realm="hutch"'

    run()


@pytest.mark.parametrize("path", ["/broadcast/\x80", "/notify/caf\xe9", "/rpc/\xff\xfe/x", "/health/\xc3"])
def test_a_path_that_is_not_utf8_is_not_a_crash(fuzz_stack, path):
    """Apache hands /broadcast/%80 over as PATH_INFO '/broadcast/\x80' (PEP 3333: latin-1 for bytes)."""
    result = call(fuzz_stack, "POST", path, [("Authorization", bearer("admin"))])
    assert_no_traceback(result)
    assert result.status in (400, 404), result.status


def test_cc_and_bcc_headers_do_not_route_copies(fuzz_stack, targets):
    """RabbitMQ's sender-selected distribution reads CC/BCC headers; clients must not reach it."""
    spy = BoundQueue(targets.rpc, {"exchange_type": "direct", "durable": False, "auto_delete": True}, "spy")
    try:
        headers = [
            ("Authorization", bearer("admin")),
            ("X-Amqp-Header-CC", "spy"),
            ("X-Amqp-Header-BCC", "spy"),
            ("CC", "spy"),
            ("BCC", "spy"),
        ]
        result = call(fuzz_stack, "POST", f"/rpc/{targets.rpc}/echo", headers, b"x")
        assert result.status == 200, result.text
        assert spy.get(timeout=0.5) is None, "a client header routed a copy of the call"
        (_, properties, _), *_ = targets.published()
        assert properties.headers == {"cc": "spy", "bcc": "spy"}
    finally:
        spy.close()


def test_the_fuzzer_can_see_a_smuggled_property():
    """check_contract is not vacuous: a message carrying user_id or a raw CC header fails it."""
    base = {"content_type": "a/b", "message_id": "m", "timestamp": int(time.time())}
    with pytest.raises(AssertionError):
        check_contract("broadcast", pika.BasicProperties(user_id="guest", **base))
    with pytest.raises(AssertionError):
        check_contract("broadcast", pika.BasicProperties(headers={"CC": ["spy"]}, **base))
    with pytest.raises(AssertionError):
        check_contract("broadcast", pika.BasicProperties(delivery_mode=2, **base))
    check_contract("notify", pika.BasicProperties(delivery_mode=2, headers={"a-b": "c"}, **base))
