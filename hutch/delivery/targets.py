"""Which URLs the delivery tier may call: ``push_allow`` and the SSRF checks.

A URL must start with one of the ``push_allow`` prefixes.  Its host must
also resolve to public addresses only (not loopback, link-local, private,
shared, reserved or multicast) unless a prefix names that host itself
(``http://127.0.0.1:`` lets tests call loopback receivers): an operator who
writes a host into the ini trusts it, a bare ``https://`` trusts nothing
inside.  The check happens at registration (an early 400) and again at
every delivery: ``CheckedResolver`` hands aiohttp only the addresses it
checked, so the connection goes to a checked address whatever DNS answers
next, and redirects are never followed (a 3xx is a failed attempt).
"""

import contextvars
import functools
import ipaddress
import socket
import urllib.parse

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from hutch.errors import TargetRefused

MAX_URL = 2048
# Whether the URL being fetched matched a prefix that names its host (set per request, read by the resolver).
TRUSTED = contextvars.ContextVar("trusted", default=False)


def internal(address):
    """Loopback, link-local, private and every other non-global or multicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def literal_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class TargetPolicy:
    """``push_allow``: the prefixes, and the hosts they name (trusted even when internal)."""

    def __init__(self, prefixes):
        self.prefixes = tuple(prefixes)
        self.check_url = functools.lru_cache(maxsize=1024)(self.check_url)  # per delivery: the same URLs

    def check_url(self, url):
        """``(host, trusted)``, or ``TargetRefused``: outside ``push_allow``, or a literal internal address.

        ``trusted``: a prefix the URL matches names the URL's host, so its addresses may be internal.
        """
        if (
            not isinstance(url, str)
            or not url
            or len(url) > MAX_URL
            or not url.isascii()
            or not url.isprintable()
        ):
            raise TargetRefused("The URL must be printable ASCII of at most 2048 characters.")
        if " " in url:
            raise TargetRefused("The URL must not hold a space (percent-encode it).")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused("The URL must be an absolute http:// or https:// URL.")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("The URL must not carry credentials.")
        matching = [prefix for prefix in self.prefixes if url.startswith(prefix)]
        if not matching:
            raise TargetRefused(
                f"The URL does not start with any push_allow prefix ({' '.join(self.prefixes)})."
            )
        host = parts.hostname
        trusted = any(named_host(prefix) == host for prefix in matching)
        if not trusted and literal_ip(host) and internal(host):
            raise TargetRefused("The URL names a loopback, link-local or private address.")
        return host, trusted

    def check_addresses(self, host, addresses, trusted=False):
        """The addresses a connection to ``host`` may use; refused if any is internal and untrusted."""
        if trusted:
            return addresses
        inside = [address for address in addresses if internal(address)]
        if inside:
            raise TargetRefused(f"{host} resolves to an internal address ({inside[0]}).")
        return addresses

    def check_resolved(self, url):
        """Registration: the URL's check, then its DNS answer (an unresolvable name is let through:
        delivery retries it, and checks again)."""
        host, trusted = self.check_url(url)
        if literal_ip(host) or trusted:
            return
        try:
            answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return
        self.check_addresses(host, [answer[4][0] for answer in answers])


def named_host(prefix):
    """The host a ``push_allow`` prefix names, or None for a bare scheme (``https://``)."""
    rest = prefix.split("://", 1)[1]
    if not rest:
        return None
    netloc = rest.split("/", 1)[0]
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0] or None
    return netloc.split(":", 1)[0] or None


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver, answering only addresses the policy allows (the connection uses them).

    The session must not cache DNS answers (``use_dns_cache=False``): an answer allowed for a
    trusted URL must not serve an untrusted one with the same host.
    """

    def __init__(self, policy):
        self.policy = policy
        self.resolver = ThreadedResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        answers = await self.resolver.resolve(host, port, family)
        addresses = [answer["host"] for answer in answers]
        allowed = set(self.policy.check_addresses(host, addresses, TRUSTED.get()))
        return [answer for answer in answers if answer["host"] in allowed]

    async def close(self):
        await self.resolver.close()
