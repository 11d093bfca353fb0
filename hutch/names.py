"""Validation of exchange, routing-key and consumer names (the contract's Names: docs/http.md)."""

import re

from hutch.errors import InvalidName, ReservedName

NAME_MAX = 127  # characters
NAME = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{NAME_MAX}}}")


def checked_name(value, what="name"):
    """Return ``value`` if it is a legal, unreserved name; raise otherwise."""
    if value is None or not NAME.fullmatch(value):
        raise InvalidName(f"Invalid {what} {value!r}: use 1-{NAME_MAX} characters of A-Z a-z 0-9 _ . : -")
    if value.startswith("amq."):
        raise ReservedName(f"The {what} {value!r} is reserved by RabbitMQ (amq.*).")
    return value
