"""The dashboard's login, as the event servers read it: a browser's session cookie authorizes its
own event stream, as it authorizes the dashboard's pages.

The event servers read the gateway's ini, so they hold the same Beaker options (secret, cookie
name, store): a cookie session is decrypted here, a Redis session (``session.type = ext:redis``)
is read from the same Redis, in a worker thread (Beaker's client blocks).  Reading never writes:
a session whose key was removed or given a new secret gives no key here (401); the gateway's next
page ends it on the server.
"""

import asyncio
import hmac

from beaker.middleware import SessionMiddleware
from beaker.session import SessionObject

from hutch.auth.csrf import SESSION_API_KEY, SESSION_API_KEY_FINGERPRINT, fingerprint
from hutch.errors import SessionStoreUnavailable


class SessionReader:
    def __init__(self, session_options):
        self.options = SessionMiddleware(None, session_options).options  # Beaker's parsing of session.*
        self.cookie_name = self.options.get("key", "beaker.session.id")

    def carries_session(self, cookie_header):
        return bool(cookie_header) and f"{self.cookie_name}=" in cookie_header

    def key_of(self, cookie_header, policy):
        """The API key the session logged in with, if ``policy`` still has it unchanged; else None."""
        session = SessionObject({"HTTP_COOKIE": cookie_header}, **self.options)
        name = session.get(SESSION_API_KEY)
        remembered = session.get(SESSION_API_KEY_FINGERPRINT)
        if not isinstance(name, str) or not isinstance(remembered, str):
            return None
        key = next((key for key in policy.keys if key.name == name), None)
        if key is None or not hmac.compare_digest(remembered.encode(), fingerprint(key).encode()):
            return None
        return key

    async def key(self, cookie_header, policy):
        """``key_of`` off the event loop (a Redis store blocks); a store that is down is a 503."""
        try:
            return await asyncio.to_thread(self.key_of, cookie_header, policy)
        except SessionStoreUnavailable:
            raise
        except (ValueError, KeyError, TypeError):
            return None  # a cookie Beaker cannot read is no session
