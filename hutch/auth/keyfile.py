"""The API key file: reading it, and changing it safely while gateways read it.

One key per line, ``name credential permission...``; ``#`` starts a
comment.  The credential is either the secret itself (files written by hand,
and the ``admin`` key the first start creates) or ``sha256:`` and the 64 hex
digits of its SHA-256 digest, which is all ``hutch keys add`` stores: a
stolen key file then opens nothing.  (A literal secret of exactly that shape
would be read as a digest; ``hutch keys add`` never makes one.)

Changes are atomic: the new content goes to a private temporary file beside
the old one, with its mode and owner, and replaces it with ``os.replace``,
so a gateway re-reading the file sees the old keys or the new ones, never
half a file.  Writers take an exclusive ``flock`` on the folder, so two
``hutch keys`` commands never lose each other's change.
"""

import contextlib
import fcntl
import os
import re
import secrets
import stat

from hutch.auth.policy import check_key_name, digest, key_with_digest, make_key, parse_permission
from hutch.files import create_once

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
HEADER = (
    "# name secret-or-sha256:digest permission... (docs/operations.md: API keys; edit with `hutch keys`)\n"
)


def credential_digest(credential):
    """The 32-byte digest a credential field stands for, and whether it was stored as a digest."""
    match = DIGEST.fullmatch(credential)
    if match:
        return bytes.fromhex(match.group(1)), True
    return None, False


def parse_line(words):
    """An ``ApiKey`` from one line's words; raise ValueError if malformed."""
    name, credential, permissions = words[0], words[1], " ".join(words[2:])
    secret_digest, hashed = credential_digest(credential)
    if hashed:
        return key_with_digest(name, secret_digest, permissions)
    return make_key(name, credential, permissions)


def key_lines(text):
    """``(line number, words)`` of every line that holds a key."""
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if words and not words[0].startswith("#"):
            yield number, words


def parse_key_text(text, path):
    keys = []
    for number, words in key_lines(text):
        if len(words) < 3:
            raise ValueError(f"{path} line {number}: expected 'name secret permission...'")
        try:
            keys.append(parse_line(words))
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
    return keys


def check_private(path, mode):
    if mode & stat.S_IRWXO:
        raise ValueError(f"{path} is accessible to other users; chmod o-rwx it")


def read_key_file(path, create=True):
    """The keys of ``path``; create the file with an admin key first if it is missing and ``create``."""
    if create and not os.path.exists(path):
        create_key_file(path)
    with open(path, encoding="ascii") as handle:
        check_private(path, os.fstat(handle.fileno()).st_mode)
        return parse_key_text(handle.read(), path)


def create_key_file(path):
    """Write a random ``admin`` key with ``*`` permissions, mode 0600, unless another process did first."""
    create_once(path, f"{HEADER}admin {secrets.token_urlsafe(32)} *\n")


# --- changing the file (hutch keys) ----------------------------------------------------


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on the key file's folder while reading and rewriting the file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_atomically(path, text):
    """Replace ``path`` with ``text``: same mode and owner as before (new: 0600, the folder's owner)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        before = os.stat(path)
        mode, owner = stat.S_IMODE(before.st_mode) & 0o770, (before.st_uid, before.st_gid)
    except FileNotFoundError:
        parent = os.stat(folder)
        mode, owner = 0o600, (parent.st_uid, parent.st_gid)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if os.geteuid() == 0 and owner != (0, 0):
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder_fd)  # the rename itself survives a crash
    finally:
        os.close(folder_fd)


def _current_text(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except FileNotFoundError:
        return HEADER


def add_key(path, name, permissions, taken=()):
    """Add key ``name``; return its new secret, of which the file keeps only the digest.

    ``taken``: names defined elsewhere (the ini), which the file must not repeat.
    """
    check_key_name(name)
    if not permissions:
        raise ValueError(f"key {name!r} needs at least one permission")
    for permission in permissions:
        parse_permission(permission)
    if name in taken:
        raise ValueError(f"key {name!r} is already defined in the ini")
    secret = secrets.token_urlsafe(32)
    line = f"{name} sha256:{digest(secret).hex()} {' '.join(permissions)}\n"
    with locked(path):
        text = _current_text(path)
        keys = parse_key_text(text, path)
        if any(key.name == name for key in keys):
            raise ValueError(f"key {name!r} exists; revoke it first to replace it")
        if text and not text.endswith("\n"):
            text += "\n"
        write_atomically(path, text + line)
    return secret


def revoke_key(path, name):
    """Remove key ``name`` from the file; raise LookupError when it has no such key."""
    with locked(path):
        if not os.path.exists(path):
            raise LookupError(f"no key {name!r}: {path} does not exist")
        text = _current_text(path)
        lines = text.splitlines(keepends=True)
        kept = [line for line in lines if not (line.split() and line.split()[0] == name)]
        if len(kept) == len(lines):
            raise LookupError(f"no key {name!r} in {path}")
        write_atomically(path, "".join(kept))


def list_keys(path):
    """``(name, permissions, stored)`` for each key of the file; ``stored`` is ``digest`` or ``secret``."""
    if not os.path.exists(path):
        return []
    text = _current_text(path)
    parse_key_text(text, path)  # a malformed file is an error, not a partial list
    return [
        (words[0], words[2:], "digest" if credential_digest(words[1])[1] else "secret")
        for _number, words in key_lines(text)
    ]
