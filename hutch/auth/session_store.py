"""Dashboard sessions kept server-side in Redis, through Beaker's own Redis backend.

With ``session.type = ext:redis`` the browser's cookie carries only a signed
session id; the session itself lives in Redis under that id, shared by every
gateway host.  So logging out, or revoking the key a browser logged in
with, ends the session on the server: a copy of the cookie made before
then finds nothing.

``RedisSessionStore`` is Beaker's ``RedisNamespaceManager`` with three
changes: a session id that is not the 32 hex digits Beaker makes never
reaches Redis; the value is stored as the text Beaker hands over (JSON,
encrypted by Beaker, in base64) instead of being pickled once more, so
nothing read back from Redis is ever unpickled; and the client has socket
timeouts and no back-off, and its failures become ``SessionStoreUnavailable``
(503 with ``Retry-After``) instead of a 500.  ``StrictSession`` never
reuses an id whose record is gone.
"""

import logging
import re
import threading

import redis
from beaker.ext.redisnm import RedisNamespaceManager
from beaker.session import Session
from redis.backoff import NoBackoff
from redis.retry import Retry

from hutch.errors import SessionStoreUnavailable

SESSION_ID = re.compile(r"[0-9a-f]{32}")  # beaker.session._session_id(): uuid4().hex
SOCKET_TIMEOUT = 1.0  # seconds; the URL's own socket_timeout / socket_connect_timeout win
BACKENDS = ("cookie", "ext:redis")

log = logging.getLogger(__name__)


class InvalidSessionId(ValueError):
    """A session id of the wrong form; Beaker (``invalidate_corrupt``) starts a fresh session instead."""


class RedisSessionStore(RedisNamespaceManager):
    """One session's record in Redis (Beaker's namespace is the session id)."""

    _clients = {}
    _clients_lock = threading.Lock()

    def __init__(self, namespace, url=None, timeout=None, retry_after=5, **_beaker_file_options):
        if not isinstance(namespace, str) or not SESSION_ID.fullmatch(namespace):
            raise InvalidSessionId("not a session id")
        if not url:
            raise ValueError("session.url is required with session.type = ext:redis")
        super().__init__(namespace, self.client_for(url), timeout=timeout)
        self.retry_after = retry_after

    @classmethod
    def client_for(cls, url):
        """One client (a thread-safe connection pool) per URL per process."""
        with cls._clients_lock:
            client = cls._clients.get(url)
            if client is None:
                client = cls._clients[url] = redis.Redis.from_url(
                    url,
                    socket_timeout=SOCKET_TIMEOUT,
                    socket_connect_timeout=SOCKET_TIMEOUT,
                    # once more at once, on a fresh connection: a pooled one dies when Redis restarts
                    retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                )
            return client

    def unavailable(self, exc):
        log.warning("session store (Redis) unavailable: %s: %s", type(exc).__name__, exc)
        detail = "The session store is unavailable; the dashboard needs it. Retry later."
        return SessionStoreUnavailable(detail, retry_after=self.retry_after)

    def __getitem__(self, key):
        try:
            entry = self.client.get(self._format_key(key))
        except redis.RedisError as exc:
            raise self.unavailable(exc) from exc
        if entry is None:
            raise KeyError(key)
        try:
            return entry.decode("ascii")
        except UnicodeDecodeError:
            raise KeyError(key) from None  # not what Beaker wrote: treated as no session

    def __contains__(self, key):
        try:
            return bool(self.client.exists(self._format_key(key)))
        except redis.RedisError as exc:
            raise self.unavailable(exc) from exc

    def set_value(self, key, value, expiretime=None):
        if not isinstance(value, str):
            raise TypeError("the session store keeps Beaker's base64 text of the session only")
        expiretime = expiretime if expiretime is not None else self.timeout
        try:
            self.client.set(
                self._format_key(key), value.encode("ascii"), ex=int(expiretime) if expiretime else None
            )
        except redis.RedisError as exc:
            raise self.unavailable(exc) from exc

    def __delitem__(self, key):
        try:
            self.client.delete(self._format_key(key))
        except redis.RedisError as exc:
            raise self.unavailable(exc) from exc

    def do_remove(self):
        del self["session"]

    def keys(self):
        return ["session"] if "session" in self else []


class StrictSession(Session):
    """A server-side session that never adopts an id the store does not hold.

    Beaker keeps the id of a cookie whose record is gone (logged out,
    expired, revoked) and saves a new session under it; this one gives the
    browser a new id instead, so an id lives only as long as its record.
    """

    def load(self):
        super().load()
        if self.is_new and not getattr(self, "_renewed", False):
            self._renewed = True
            self.invalidate()  # a new id; its load finds nothing, as it should


# --- what the dashboard does to a session -----------------------------------------


def forget_record(session):
    """Delete the session's record from the server (Redis); nothing to do for cookie sessions."""
    store = getattr(session, "namespace", None)
    if isinstance(store, RedisSessionStore):
        store.do_remove()


def renew_id(session):
    """Give the session a new id, keeping its data, and delete the record under the old id.

    Done at login, so an id known before the login (session fixation) is
    worth nothing after it.
    """
    forget_record(session)
    if isinstance(getattr(session, "namespace", None), RedisSessionStore):
        session.regenerate_id()


def end(session):
    """End the session on the server: its record is deleted and the browser gets a fresh, empty one."""
    forget_record(session)
    session.invalidate()


def backend_options(session, retry_after):
    """Beaker's options for the ini's ``session.type``: ``cookie``, or ``ext:redis`` with ``session.url``.

    Raises ValueError for any other backend: Beaker's file and dbm backends
    build paths from the session id, and its memory backend is one
    process's only.
    """
    kind = session.get("session.type")
    if kind not in BACKENDS:
        raise ValueError(f"session.type must be one of {', '.join(BACKENDS)}, not {kind!r}")
    if kind == "cookie":
        return session
    url = session.get("session.url", "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("session.type = ext:redis needs session.url = redis://host:port/db")
    return {
        **session,
        "session.session_class": StrictSession,
        "session.namespace_class": RedisSessionStore,
        "session.retry_after": retry_after,
    }
