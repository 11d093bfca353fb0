"""Creating a file that several processes may create at the same moment."""

import contextlib
import os
import secrets


def create_once(path, text):
    """Create ``path`` holding ``text`` (mode 0600) unless it exists; the first creator wins.

    The text goes to a private temporary file that is hard-linked into place, so a
    process starting at the same moment never reads a half-written file, and every
    process ends up reading the one file that won.  Returns whether this call created it.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(temporary, path)
            return True
        return False
    finally:
        os.unlink(temporary)
