"""API keys: who may use which idiom on which exchange.

The ini names each key and its permissions; ``hutch.auth.live_keys.parse_auth`` turns them into an
immutable ``AuthPolicy`` at start-up (a malformed permission stops the
gateway there, not at the first request).  ``authorize`` is what
``hutch.web.http.Routes`` calls after the names in the path are validated and
before a view runs, so a refused request never reaches the broker.

A permission is ``idiom:pattern`` (``notify:patient.*``, ``rpc:api/*``) or
``*`` for everything.  ``metrics`` (reading ``GET /metrics``) has no
resource: it is written alone, or as ``metrics:*``.  The pattern is matched against the resource: the
exchange, or ``exchange/routing_key`` for rpc; ``*`` matches any run of name
characters but never crosses the ``/``, and a pattern that is only ``*``
matches every resource of its idiom.  ``register`` (declaring a consumer
queue) is separate from ``notify`` (publishing to it); ``respond`` (an HTTP
responder for ``exchange/routing_key``) is separate from ``rpc`` (calling it).

Secrets are kept only as SHA-256 digests and compared with
``hmac.compare_digest`` against every key, so neither the time taken nor the
log tells which key, or how much of it, matched.  Nothing here logs a secret.
"""

import base64
import binascii
import dataclasses
import hashlib
import hmac
import logging
import re

from hutch.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

IDIOMS = ("broadcast", "notify", "register", "rpc", "watch", "metrics", "respond")
WHOLE_IDIOMS = ("metrics",)  # idioms without a resource: the permission is the idiom alone
EXCHANGE_WIDE = ("respond",)  # granted on the exchange, though its routes name exchange/routing_key
MODES = ("keys", "off")
CHALLENGE = ("WWW-Authenticate", 'Bearer realm="hutch", Basic realm="hutch"')
KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SECRET = re.compile(r"[\x21-\x7e]{16,256}")  # printable ASCII without spaces: fits a header and a key file
PATTERN_SEGMENT = re.compile(r"[A-Za-z0-9_.:*-]{1,127}")
ENVIRON_KEY = "hutch.api_key"


def digest(secret):
    """A fixed-length digest, so compare_digest's time never depends on the secret's length."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclasses.dataclass(frozen=True)
class Permission:
    """``idiom:pattern``; ``idiom`` None means every idiom (the ``*`` permission)."""

    text: str
    idiom: str | None
    regex: re.Pattern = dataclasses.field(repr=False, compare=False)

    def allows(self, idiom, resource):
        return (self.idiom is None or self.idiom == idiom) and self.regex.fullmatch(resource) is not None


@dataclasses.dataclass(frozen=True)
class ApiKey:
    name: str
    secret_digest: bytes = dataclasses.field(repr=False)
    permissions: tuple
    name_digest: bytes = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "name_digest", digest(self.name))

    def allows(self, idiom, resource):
        return any(permission.allows(idiom, resource) for permission in self.permissions)


@dataclasses.dataclass(frozen=True)
class AuthPolicy:
    """``mode`` is ``keys`` (every protected route needs a key) or ``off`` (development)."""

    mode: str = "keys"
    keys: tuple = ()

    @property
    def enabled(self):
        return self.mode != "off"

    def authenticate(self, authorization):
        """The ``ApiKey`` that the Authorization header proves, or None."""
        credentials = parse_authorization(authorization)
        if credentials is None:
            return None
        name, secret = credentials
        presented = digest(secret)
        presented_name = digest(name) if name is not None else None
        found = None
        for key in self.keys:  # no early exit: every key costs the same comparison
            secret_ok = hmac.compare_digest(presented, key.secret_digest)
            name_ok = presented_name is None or hmac.compare_digest(presented_name, key.name_digest)
            if secret_ok and name_ok and found is None:
                found = key
        return found


def parse_authorization(header):
    """``(name, secret)`` from ``Bearer <secret>`` (name None) or ``Basic base64(name:secret)``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if not value:
        return None
    if scheme == "bearer":
        return None, value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, colon, secret = decoded.partition(":")
        return (name, secret) if colon else None
    return None


def denied(key, idiom, resource):
    """The 403 for a key without the permission; a resource-less idiom (``metrics``) names no resource."""
    if resource:
        return Forbidden(f"The API key {key.name!r} may not {idiom} {resource!r}.")
    return Forbidden(f"The API key {key.name!r} lacks the {idiom!r} permission.")


def authorize(environ, policy, idiom, resource):
    """Let the request through, or raise 401 (no valid key) / 403 (key lacks the permission)."""
    if not policy.enabled:
        return None
    key = policy.authenticate(environ.get("HTTP_AUTHORIZATION"))
    if key is None:
        detail = "A valid API key is required (Authorization: Bearer <key>, or Basic with name:key)."
        raise Unauthorized(detail, headers=[CHALLENGE])
    if not key.allows(idiom, resource):
        log.info("API key %s may not %s %s", key.name, idiom, resource)
        raise denied(key, idiom, resource)
    environ[ENVIRON_KEY] = key.name
    return key.name


# --- start-up: ini and key file -> AuthPolicy --------------------------------


def parse_permission(text):
    """``*`` or ``idiom:pattern``; raise ValueError for anything else."""
    if text == "*":
        return Permission(text, None, re.compile(r".*", re.DOTALL))
    if text in WHOLE_IDIOMS:
        return Permission(text, text, re.compile(r".*", re.DOTALL))
    idiom, colon, pattern = text.partition(":")
    if idiom in WHOLE_IDIOMS and pattern != "*":
        raise ValueError(f"permission {text!r}: {idiom} has no resource; write {idiom!r} alone")
    if not colon or idiom not in IDIOMS:
        raise ValueError(f"permission {text!r} must be '*' or idiom:pattern with idiom one of {IDIOMS}")
    if pattern == "*":
        return Permission(text, idiom, re.compile(r".*", re.DOTALL))
    segments = pattern.split("/")
    if len(segments) != (2 if idiom == "rpc" else 1):
        shape = "exchange/routing_key" if idiom == "rpc" else "an exchange pattern"
        raise ValueError(f"permission {text!r}: the pattern of {idiom} must be {shape} (or '*')")
    for segment in segments:
        if not PATTERN_SEGMENT.fullmatch(segment):
            raise ValueError(f"permission {text!r}: patterns are name characters and '*'")
    regex = "/".join(re.escape(segment).replace(r"\*", "[^/]*") for segment in segments)
    if idiom in EXCHANGE_WIDE:  # granted on the exchange: every routing key of its resources
        regex += "(?:/[^/]*)?"
    return Permission(text, idiom, re.compile(regex))


def make_key(name, secret, permissions_text):
    check_key_name(name)
    if not SECRET.fullmatch(secret):
        raise ValueError(f"the secret of key {name!r} must be 16-256 printable ASCII characters, no spaces")
    return key_with_digest(name, digest(secret), permissions_text)


def check_key_name(name):
    if not KEY_NAME.fullmatch(name):
        raise ValueError(f"key name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return name


def key_with_digest(name, secret_digest, permissions_text):
    """An ``ApiKey`` from its secret's digest (a key file may store only that)."""
    check_key_name(name)
    words = permissions_text.split()
    if not words:
        raise ValueError(f"key {name!r} has no permissions")
    return ApiKey(name, secret_digest, tuple(parse_permission(word) for word in words))


def check_unique(keys):
    """Raise ValueError when two keys share a name or a secret."""
    names = [key.name for key in keys]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"key {twice[0]!r} is defined twice")
    if len({key.secret_digest for key in keys}) != len(keys):
        raise ValueError("two keys share a secret; give each key its own")


def parse_ini_keys(entries):
    """The keys of the ini's ``auth.key.<name>``/``auth.permissions.<name>`` pairs (prefix removed)."""
    secrets_by_name, permissions_by_name = {}, {}
    for key, text in entries.items():
        kind, dot, name = key.partition(".")
        if kind == "key" and dot:
            secrets_by_name[name] = text.strip()
        elif kind == "permissions" and dot:
            permissions_by_name[name] = text
        else:
            raise ValueError(f"unknown setting auth.{key}; known: auth.key.<name>, auth.permissions.<name>")
    unpaired = sorted(secrets_by_name.keys() ^ permissions_by_name.keys())
    if unpaired:
        name = unpaired[0]
        raise ValueError(f"key {name!r} needs both auth.key.{name} and auth.permissions.{name}")
    names = sorted(secrets_by_name)
    return [make_key(name, secrets_by_name[name], permissions_by_name[name]) for name in names]
