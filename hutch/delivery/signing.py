"""Standard Webhooks secrets: made, sealed at rest, and used to sign each delivery.

A secret is ``whsec_`` + base64 of 32 random bytes; the receiver checks
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``)
with any Standard Webhooks library.  The store never holds a secret in the
clear: each is sealed with AES-GCM under a key that lives on the hosts only
(``push_key_file``, else derived from the session secret), so a copy of the
store alone cannot forge a signature.  Nothing here logs a secret.
"""

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "whsec_"
KEY_BYTES = 32
NONCE_BYTES = 12
SEAL_CONTEXT = b"hutch push secrets v1"


def new_secret():
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def secret_key(secret):
    """The HMAC key a ``whsec_`` secret stands for."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(keys, message_id, timestamp, body):
    """The ``webhook-signature`` value: one ``v1,`` signature per key (two while a rotation lasts)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


class Sealer:
    """Seal and open secrets with AES-GCM; the subscription's name is bound in as associated data,
    so a sealed secret copied onto another subscription does not open."""

    def __init__(self, key_material):
        self.aead = AESGCM(hashlib.sha256(SEAL_CONTEXT + key_material).digest())

    def seal(self, secret, name):
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, secret.encode("ascii"), name.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed, name):
        """The secret, or None when it does not open under this key (another key, or tampered with)."""
        raw = base64.b64decode(sealed)
        try:
            return self.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], name.encode()).decode("ascii")
        except InvalidTag:
            return None


def sealer_for(settings):
    """The hosts' sealing key: ``push_key_file`` (created once, 0600), else the session secret."""
    if settings.push_key_file:
        from hutch.settings import _read_or_create_secret

        return Sealer(_read_or_create_secret(settings.push_key_file).encode())
    return Sealer(settings.session["session.secret"].encode())
