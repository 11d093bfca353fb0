"""Short-lived signed tickets: how a logged-in browser opens an event stream.

An EventSource cannot send an ``Authorization`` header, and the event server
does not read the gateway's Beaker sessions.  So the dashboard asks the WSGI
side (which knows the session) for a ticket naming the API key and the
exchange, signed with HMAC-SHA256 under a key derived from the session
secret that both sides read from the same ini, and passes it in the stream's
URL.  The event server checks the signature, the exchange and the expiry,
then authorizes the named key exactly as for a header: a key revoked or
stripped of ``watch`` since the ticket was issued is refused.
"""

import base64
import binascii
import hashlib
import hmac
import time

PURPOSE = b"hutch event-stream ticket v1"


def signing_key(session_secret):
    """A key of its own for tickets, so a ticket never doubles as anything Beaker signs."""
    return hmac.new(session_secret.encode(), PURPOSE, hashlib.sha256).digest()


def _sign(key, payload):
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).rstrip(b"=")


def issue(key, key_name, exchange, ttl, now=None):
    """A ticket letting ``key_name`` watch ``exchange`` for the next ``ttl`` seconds.

    ``key_name`` is "" when authentication is off.
    """
    expires = int((time.time() if now is None else now) + ttl)
    payload = f"{expires}:{key_name}:{exchange}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=")
    return (encoded + b"." + _sign(key, payload)).decode("ascii")


def verify(key, ticket, exchange, now=None):
    """The key name the ticket was issued to, or None if it is forged, expired or for another exchange."""
    encoded, dot, signature = ticket.encode("ascii", "replace").partition(b".")
    if not dot:
        return None
    try:
        payload = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    expires, _, rest = payload.decode("utf-8", "replace").partition(":")
    key_name, _, ticket_exchange = rest.partition(":")
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return None
    if ticket_exchange != exchange:
        return None
    return key_name
