"""The API key policy of a running gateway that follows its key file.

``hutch keys add`` and ``hutch keys revoke`` change the key file while the
gateway runs; the gateway must honour the change within seconds without
reading the file on every request.  ``LivePolicy`` answers from the keys it
holds, and at most once per ``CHECK_INTERVAL`` one request thread stats the
file (never blocking the others); when its identity, size or modification
time changed, the file is parsed again and the new keys replace the old in
one assignment.  A file that does not parse, or is gone, keeps the last good
keys (and logs why), so a bad edit neither locks everyone out nor lets
anyone new in.  Every consumer of ``settings.auth`` (the API routes, the
dashboard's session checks) sees the current keys.
"""

import logging
import os
import threading
import time

from hutch.auth.keyfile import create_key_file, read_key_file
from hutch.auth.policy import MODES, AuthPolicy, check_unique, parse_ini_keys

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between two looks at the key file


def file_signature(path):
    """What changes when the file is replaced or rewritten (atomic writes give a new inode)."""
    info = os.stat(path)
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class LivePolicy:
    """An ``AuthPolicy`` (same attributes and ``authenticate``) kept in step with a key file."""

    def __init__(self, mode, ini_keys, key_file, clock=time.monotonic):
        self.mode = mode
        self.key_file = key_file
        self.ini_keys = tuple(ini_keys)
        self._clock = clock
        self._reloading = threading.Lock()
        self._signature = None
        self._policy = self._load(create=True)  # a bad file stops the gateway at start-up
        self._checked = clock()

    def __repr__(self):
        names = ", ".join(key.name for key in self._policy.keys)
        return f"LivePolicy(mode={self.mode!r}, key_file={self.key_file!r}, keys=[{names}])"

    @property
    def enabled(self):
        return self.mode != "off"

    @property
    def keys(self):
        return self.current().keys

    def authenticate(self, authorization):
        return self.current().authenticate(authorization)

    def current(self):
        """The ``AuthPolicy`` of the file as it is now (checked at most once a CHECK_INTERVAL)."""
        now = self._clock()
        if now - self._checked < CHECK_INTERVAL or not self._reloading.acquire(blocking=False):
            return self._policy
        try:
            self._checked = now
            self._reload_if_changed()
        finally:
            self._reloading.release()
        return self._policy

    def _reload_if_changed(self):
        try:
            signature = file_signature(self.key_file)
        except OSError as error:
            if self._signature is not None:
                log.error("API key file %s: %s; keeping the %d keys read before", self.key_file, error,
                          len(self._policy.keys))  # fmt: skip
                self._signature = None
            return
        if signature == self._signature:
            return
        try:
            self._policy = self._load(create=False)
        except (OSError, ValueError) as error:
            self._signature = signature  # say it once per change, not every second
            log.error("API key file %s: %s; keeping the keys read before", self.key_file, error)
            return
        log.info("API key file %s changed: %d keys", self.key_file, len(self._policy.keys))

    def _load(self, create):
        if create and not os.path.exists(self.key_file):
            create_key_file(self.key_file)
        signature = file_signature(self.key_file)  # before reading: a change meanwhile is seen next time
        keys = self.ini_keys + tuple(read_key_file(self.key_file, create=False))
        check_unique(keys)
        self._signature = signature
        return AuthPolicy(self.mode, keys)


def parse_auth(mode, entries, key_file=None):
    """The policy from ``auth``, the ``auth.key.*``/``auth.permissions.*`` entries and a key file.

    ``entries`` maps the ini's ``auth.``-prefixed keys (without the prefix) to
    their text.  With a key file the policy follows the file while the
    gateway runs (``hutch.auth.live_keys``).  Raises ValueError on anything
    malformed.
    """
    if mode not in MODES:
        raise ValueError(f"auth must be one of {MODES}, not {mode!r}")
    keys = tuple(parse_ini_keys(entries))
    if key_file:
        policy = LivePolicy(mode, keys, key_file)
    else:
        check_unique(keys)
        policy = AuthPolicy(mode, keys)
    if mode == "off":
        log.warning("auth = off: every client may publish, call and register (development only)")
    elif not policy.keys:
        log.warning("auth = keys but no key is configured: every protected route answers 401")
    return policy
