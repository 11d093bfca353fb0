"""The dashboard's session guards: CSRF tokens, and the API key a browser logged in with.

A form carries the session's token in a hidden field; a POST whose field
is missing or differs (compared in constant time) is refused with 403
``bad_csrf_token`` before it does anything.

A browser logs in to the dashboard once with an API key (a form, not the
Basic dialog, so it can also log out).  The session keeps the key's name
and a fingerprint of its digest, never the secret; every request looks the
key up in the policy the gateway holds at that moment, so a key removed
from the configuration, or given a new secret, ends the session at its
next request, on the server as well as in the browser.  Logging in gives
the session a new id; logging out deletes it on the server
(``hutch.auth.session_store``).  A request that carries an ``Authorization``
header (any machine client) is authorized by that header alone and never
touches the session.
"""

import hashlib
import hmac
import secrets

from hutch.auth import session_store
from hutch.auth.policy import CHALLENGE, ENVIRON_KEY, authorize, denied
from hutch.errors import BadCsrfToken, Unauthorized

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"
SESSION_API_KEY = "api_key_name"
SESSION_API_KEY_FINGERPRINT = "api_key_fingerprint"


def csrf_token(session):
    """The session's token, made (and the session saved) on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
        session.save()
    return token


def check_csrf(session, submitted):
    """Raise ``BadCsrfToken`` unless ``submitted`` is the session's token."""
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(submitted, str):
        raise BadCsrfToken()
    if not hmac.compare_digest(expected.encode(), submitted.encode("utf-8", "surrogateescape")):
        raise BadCsrfToken()


# --- logging in with an API key -------------------------------------------------


def fingerprint(key):
    """What a session keeps to recognise its key's secret: a hash of the secret's digest."""
    return hashlib.sha256(b"hutch.session.api_key:" + key.secret_digest).hexdigest()[:32]


def log_in(session, policy, secret):
    """Remember the key whose secret this is; None (and nothing remembered) if there is none."""
    key = policy.authenticate(f"Bearer {secret}") if secret else None
    if key is not None:
        session_store.renew_id(session)  # an id known before the login is worth nothing after it
        session[SESSION_API_KEY] = key.name
        session[SESSION_API_KEY_FINGERPRINT] = fingerprint(key)
        session[SESSION_KEY] = secrets.token_urlsafe(32)  # a new token for the new identity
        session.save()
    return key


def log_out(session):
    """Delete the session on the server; the browser continues with a fresh one (a new CSRF token)."""
    session_store.end(session)
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    session.save()


def session_key(session, policy):
    """The key this browser logged in with, if ``policy`` (the live one) still has it unchanged.

    A session whose key was removed or given another secret is ended here,
    on the server, and None is returned.
    """
    name = session.get(SESSION_API_KEY)
    if not isinstance(name, str):
        return None
    remembered = session.get(SESSION_API_KEY_FINGERPRINT)
    key = next((key for key in policy.keys if key.name == name), None)
    if (
        key is None
        or not isinstance(remembered, str)
        or not hmac.compare_digest(remembered.encode(), fingerprint(key).encode())
    ):
        log_out(session)
        return None
    return key


def authorize_browser(environ, policy, idiom, resource):
    """Like ``hutch.auth.policy.authorize``, but a request without a header may use its session's key.

    Returns the key's name (None with auth off); raises 401 or 403.
    """
    if not policy.enabled:
        return None
    if environ.get("HTTP_AUTHORIZATION"):
        return authorize(environ, policy, idiom, resource)
    key = session_key(environ["beaker.session"], policy)
    if key is None:
        raise Unauthorized("Log in to the dashboard, or send an API key.", headers=[CHALLENGE])
    if not key.allows(idiom, resource):
        raise denied(key, idiom, resource)
    environ[ENVIRON_KEY] = key.name
    return key.name


def viewer(environ, policy):
    """The name of the key behind this request (header or session), None if none or auth is off."""
    if not policy.enabled:
        return None
    header = environ.get("HTTP_AUTHORIZATION")
    key = policy.authenticate(header) if header else session_key(environ["beaker.session"], policy)
    return key.name if key is not None else None
