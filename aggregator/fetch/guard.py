"""The private-address guard for URLs strangers wrote (article links and their redirects).

A client made with ``guard=True`` routes every request, each redirect hop included,
through :class:`GuardedTransport`: it resolves the host once, refuses any address that
is not globally routable, and connects to exactly the address it checked (no second
DNS lookup an attacker could answer differently).

Feed clients (``guard=False``) fetch the admin's URL as given, but a feed that sends
them to another host is a stranger's choice too: :class:`FeedRedirectGuard` puts every
request to a host other than the listed URL's through the same guard, unless the
listed host is itself private (the admin chose an intranet).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable

import httpx

from aggregator.errors import BlockedURL, FetchError
from aggregator.fetch.dns import LookupTimeout, Resolver, lookup

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ALLOWED_SCHEMES = frozenset({"http", "https"})
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_ADDRESS_CHECKS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("loopback", lambda a: a.is_loopback),
    ("unspecified", lambda a: a.is_unspecified),
    ("link-local", lambda a: a.is_link_local),
    ("multicast", lambda a: a.is_multicast),
    ("shared (carrier-grade NAT)", lambda a: a in _SHARED_ADDRESS_SPACE),
    ("private", lambda a: a.is_private),
    ("reserved", lambda a: a.is_reserved),
    ("non-public", lambda a: not a.is_global),
)


class GuardedTransport(httpx.BaseTransport):
    """Refuses requests to non-public addresses and pins the connection to the checked IP.

    httpx calls the transport once per redirect hop, so every hop is checked. The
    request the inner transport sees carries the IP in its URL, the original ``Host``
    header and, for https, the host name as SNI so certificates are still checked
    against the name. The client keeps its own request, so ``response.url`` stays the
    host-name URL.
    """

    def __init__(self, transport: httpx.BaseTransport, *, resolve: Resolver | None = None) -> None:
        self._transport = transport
        self._resolve = resolve or _resolve_host

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("connect")
        addresses = _checked_addresses(
            request.url, lambda host, port: lookup(host, port, self._resolve, timeout)
        )
        for address in addresses[:-1]:
            try:
                return self._transport.handle_request(_pinned(request, address))
            except httpx.ConnectError:
                # Say, an IPv6 address on a host without IPv6: try the next one.
                logger.debug("%s: could not connect to %s, trying next", request.url, address)
        return self._transport.handle_request(_pinned(request, addresses[-1]))

    def close(self) -> None:
        self._transport.close()


# The request extension that names the feed URL as written in feeds.yaml.
LISTED_URL = "aggregator.listed_url"


class FeedRedirectGuard(httpx.BaseTransport):
    """Sends requests to the listed feed's own host straight to ``direct``, and those to
    any other host (a redirect, a recorded move, an advertised feed) through ``hops``,
    a :class:`GuardedTransport`, unless the listed host is private itself.

    A refusal never connects and never names the address or the port, so a feed's
    error on /healthz reads the same whatever is listening inside: no port probe.
    """

    def __init__(
        self,
        direct: httpx.BaseTransport,
        hops: httpx.BaseTransport,
        *,
        resolve: Resolver | None = None,
    ) -> None:
        self._direct = direct
        self._hops = hops
        self._resolve = resolve or _resolve_host

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        listed = request.extensions.get(LISTED_URL)
        if not listed or self._may_go_direct(request, httpx.URL(listed)):
            return self._direct.handle_request(request)
        try:
            return self._hops.handle_request(request)
        except BlockedURL as exc:
            logger.warning("%s: refused to follow the feed to %s: %s", listed, request.url, exc)
            message = (
                f"refused to follow the feed to {request.url.host}: not a public address"
                " (allowed when the feed's own host is private, or with allow_private_addresses)"
            )
            raise BlockedURL(message, url=listed) from None

    def _may_go_direct(self, request: httpx.Request, listed: httpx.URL) -> bool:
        if request.url.host == listed.host:
            return True
        timeout = request.extensions.get("timeout", {}).get("connect")
        try:
            _checked_addresses(
                listed, lambda host, port: lookup(host, port, self._resolve, timeout)
            )
        except BlockedURL:
            return True  # the admin listed a private host: an intranet, trusted whole
        except FetchError:
            return False  # cannot tell: guard
        return False

    def close(self) -> None:
        self._direct.close()
        self._hops.close()


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """A copy of ``request`` addressed to ``address``, for the wire only."""
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = request.url.raw_host.decode("ascii")
    return httpx.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=request.headers,  # holds the original Host header
        stream=request.stream,
        extensions=extensions,
    )


def check_url_allowed(url: str, *, resolve: Resolver | None = None) -> None:
    """Raise BlockedURL unless ``url`` is http(s) and its host resolves to public addresses only.

    Raises FetchError (the parent of BlockedURL) when the host does not resolve.
    """
    _checked_addresses(parse_http_url(url), resolve or _resolve_host)


def parse_http_url(url: str) -> httpx.URL:
    """Parse ``url``, refusing anything but http(s).

    Checked before httpx sees the URL: httpx treats ``javascript:x`` as a relative URL
    and drops its scheme, so a transport could no longer tell what it was.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BlockedURL(f"invalid URL: {exc}", url=url) from exc
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise BlockedURL(f"scheme {parsed.scheme or '(none)'!r} is not allowed", url=url)
    return parsed


def _checked_addresses(url: httpx.URL, resolve: Resolver) -> list[str]:
    """The addresses ``url`` may be fetched from; raises BlockedURL if any is refused."""
    if url.scheme not in _ALLOWED_SCHEMES:
        raise BlockedURL(f"scheme {url.scheme or '(none)'!r} is not allowed", url=str(url))
    host = url.raw_host.decode("ascii")
    if not host:
        raise BlockedURL("URL has no host", url=str(url))
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _addresses_of(host, port, resolve, url=str(url))
    for address in addresses:
        reason = _blocked_reason(address)
        if reason:
            raise BlockedURL(f"{host} resolves to {reason}", url=str(url))
    return list(dict.fromkeys(str(address) for address in addresses))


def _addresses_of(host: str, port: int, resolve: Resolver, *, url: str) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        resolved = resolve(host, port)
    except OSError as exc:
        raise FetchError(f"could not resolve {host}: {exc}", url=url) from exc
    except LookupTimeout as exc:
        raise FetchError(str(exc), url=url) from exc
    if not resolved:
        raise FetchError(f"could not resolve {host}: no addresses", url=url)
    return [ipaddress.ip_address(address.partition("%")[0]) for address in resolved]


def literal_address(host: str) -> IPAddress | None:
    """Parse an IP literal, including the forms inet_aton accepts (2130706433, 0x7f.1, 127.1)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to, in the order the system prefers them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
    return [str(info[4][0]) for info in infos]


def _blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched ("private address 10.0.0.5"), or None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        # A dual-stack socket connects to the mapped IPv4 address, so judge that alone.
        reason = _blocked_reason(address.ipv4_mapped)
        return reason and f"{reason} (as {address})"
    embedded = _embedded_ipv4(address)
    reason = _blocked_reason(embedded) if embedded else None
    if reason:
        return f"{reason} (as {address})"
    for label, test in _ADDRESS_CHECKS:
        if test(address):
            return f"{label} address {address}"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or NAT64 address would reach, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.sixtofour:
        return address.sixtofour
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
