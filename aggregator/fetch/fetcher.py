"""Fetch feeds and article pages over HTTP: the only module (with extractor) that imports httpx.

Every httpx failure is turned into one of our errors here, so nothing downstream has to
know about httpx. Bodies are streamed and capped *after* decompression, so neither a huge
feed nor a gzip bomb can fill memory, and a total deadline stops servers that trickle.

Article links come from feed content, which strangers write. A client made with
``guard=True`` therefore routes every request, each redirect hop included, through
:class:`GuardedTransport`: it resolves the host once, refuses any address that is not
globally routable, and connects to exactly the address it checked (no second DNS lookup
an attacker could answer differently). Name lookups, guarded or not, count against the
request's deadline too: getaddrinfo cannot be interrupted, so it runs on a lookup thread
and the fetch stops waiting for it when the time is up.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpcore
import httpx

from aggregator.config import Settings
from aggregator.errors import BlockedURL, FetchError, HTTPStatusError, ResponseTooLarge, Stopped
from aggregator.models import FetchResult

__all__ = [
    "FEED_ACCEPT",
    "GuardedTransport",
    "HostSlots",
    "check_url_allowed",
    "fetch_feed",
    "fetch_page",
    "host_key",
    "make_client",
    "polite_map",
]

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
# Threads that run name lookups for every fetch (see _lookup): one is added whenever a
# lookup would otherwise wait, up to this many. One stuck on a hanging DNS server stays
# stuck until the system resolver gives up (its fetch does not), so a few dead names
# must not leave the other feeds' lookups queued behind them.
LOOKUP_THREADS = 64
LOOKUP_IDLE_SECONDS = 30.0  # a lookup thread with nothing to do this long ends
# A server may take this many times the per-request timeout in all before we give up.
DEADLINE_FACTOR = 2
# Raw body chunks are cut to this size before httpx decompresses them: deflate expands
# at most ~1032x, so one decode step can never produce more than ~4 MB at once.
RAW_CHUNK_BYTES = 4096
# Only codings whose expansion is bounded per input byte; see _SafeBodyTransport.
ACCEPT_ENCODING = "gzip, deflate"
# Feed formats first, so a server with content negotiation sends the feed, not a page.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
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


# --------------------------------------------------------------------------- clients


def make_client(
    settings: Settings, *, guard: bool, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An httpx client with our User-Agent, timeouts and redirect policy.

    Feed clients (URLs the admin wrote) use ``guard=False``; article-page clients
    (URLs strangers wrote) use ``guard=True``, which is a no-op when the settings
    allow private addresses.
    """
    guarded = guard and not settings.allow_private_addresses
    inner = transport if transport is not None else _default_transport(guarded)
    wrapped: httpx.BaseTransport = _SafeBodyTransport(inner)
    if guarded:
        wrapped = GuardedTransport(wrapped)
    return httpx.Client(
        transport=wrapped,
        headers={"User-Agent": settings.effective_user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(settings.timeout.total_seconds()),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # Proxies from the environment would connect on our behalf and bypass the guard.
        trust_env=not guarded,
    )


def _default_transport(guarded: bool) -> httpx.BaseTransport:
    if not guarded:
        return _DeadlineTransport(httpx.Limits(max_connections=100, max_keepalive_connections=40))
    # The guard sends requests to an IP, so the pool keys connections by IP. Keeping
    # none alive stops an https request for one host from reusing a TLS session that
    # was verified for another host behind the same (CDN) address.
    return _DeadlineTransport(httpx.Limits(max_keepalive_connections=0))


# --------------------------------------------------------------------------- deadline


class _Deadline(threading.local):
    """The monotonic time the current thread's request must be over by, if any."""

    at: float | None = None


_deadline = _Deadline()


@contextmanager
def _request_deadline(seconds: float | None) -> Iterator[float | None]:
    """Give every socket operation of this thread's request at most ``seconds`` in all."""
    previous = _deadline.at
    _deadline.at = time.monotonic() + seconds if seconds else None
    try:
        yield _deadline.at
    finally:
        _deadline.at = previous


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline; raises once it passed."""
    at = _deadline.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the total deadline passed")
    return left if timeout is None else min(timeout, left)


class _LookupTimeout(httpcore.ConnectTimeout):
    """A name lookup gave no answer before the connect timeout or the deadline."""


def _lookup(host: str, port: int, resolve: Resolver, timeout: float | None) -> list[str]:
    """``resolve(host, port)``, given up (_LookupTimeout) once ``timeout`` or this
    thread's request deadline passes; without either it simply runs here."""
    try:
        left = _time_left(timeout, _LookupTimeout)
    except _LookupTimeout as exc:
        raise _LookupTimeout(f"could not resolve {host}: {exc}") from None
    if left is None:
        return resolve(host, port)
    future = _LOOKUPS.submit(lambda: resolve(host, port))
    done, _ = wait([future], timeout=left)
    if not done:
        future.cancel()  # still queued behind stuck lookups: it never starts
        raise _LookupTimeout(f"could not resolve {host}: no answer within {left:.2g}s")
    return future.result()


class _LookupPool:
    """Daemon threads that run name lookups, so the fetch asking can stop waiting.

    A thread is started whenever a lookup comes and none is free, up to ``most``; a
    thread idle for ``idle_seconds`` ends. Not a ThreadPoolExecutor: that one starts a
    thread only below its size whatever the others are doing, and the interpreter joins
    its threads at exit, so a lookup hanging on a dead DNS server would hold up the
    daemon's shutdown.
    """

    def __init__(self, most: int, idle_seconds: float = LOOKUP_IDLE_SECONDS) -> None:
        self._most = most
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._threads = 0  # running
        self._idle = 0  # waiting for a job
        self._queued = 0  # submitted, not yet taken
        self._started = 0  # ever, for the threads' names
        self._jobs: queue.SimpleQueue[tuple[Future[list[str]], Callable[[], list[str]]]] = (
            queue.SimpleQueue()
        )

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, lookup: Callable[[], list[str]]) -> Future[list[str]]:
        future: Future[list[str]] = Future()
        with self._lock:
            self._jobs.put((future, lookup))
            self._queued += 1
            if self._queued > self._idle and self._threads < self._most:
                self._threads += 1
                self._started += 1
                name = f"lookup-{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                future, lookup = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    # a job put since the timeout counted on this thread being idle
                    if self._queued <= self._idle:
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if not future.set_running_or_notify_cancel():
                continue  # its fetch gave up before it started
            try:
                future.set_result(lookup())
            except BaseException as exc:  # handed to the fetch waiting for it
                future.set_exception(exc)


_LOOKUPS = _LookupPool(LOOKUP_THREADS)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and handshake ends by the deadline.

    httpx's timeouts apply per socket operation, so a server sending one byte a second
    (of the headers or of the body) would never trip them; this bounds the sum.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to ``host``'s addresses in turn, like socket.create_connection, but
        with the name lookup inside the connect timeout and the deadline."""
        literal = _literal_address(host) is not None
        addresses = [host] if literal else _system_addresses(host, port, timeout)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            left = _time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._backend.connect_tcp(
                    address, port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # say, an IPv6 address on a host without IPv6: try the next
                continue
            return _DeadlineStream(stream)
        raise failure or httpcore.ConnectError(f"could not resolve {host}: no addresses")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _system_addresses(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses socket.create_connection would try, looked up within the limits."""
    try:
        return _lookup(host, port, _connect_addresses, timeout)
    except OSError as exc:  # as httpcore maps create_connection's errors
        raise httpcore.ConnectError(str(exc)) from exc


def _connect_addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport (pooling, exception mapping) over the deadline backend."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


class _SafeBodyTransport(httpx.BaseTransport):
    """Keeps httpx's eager body reads and decompression within bounds.

    httpx reads every redirect body in full and decompresses each raw chunk in one
    step, so it discards redirect bodies (we never use them), cuts raw chunks small,
    and refuses stacked encodings (``gzip, gzip`` multiplies the expansion).
    """

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        if _codings(response.headers) > 1:
            response.close()
            raise httpx.DecodingError("stacked content encodings are refused", request=request)
        if response.has_redirect_location:
            response.close()
            stream: httpx.SyncByteStream = httpx.ByteStream(b"")
        else:
            stream = _SmallChunks(response.stream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._transport.close()


def _codings(headers: httpx.Headers) -> int:
    values = ",".join(headers.get_list("content-encoding")).split(",")
    return sum(1 for value in values if value.strip().lower() not in ("", "identity"))


class _SmallChunks(httpx.SyncByteStream):
    """Re-yields a byte stream in pieces of at most RAW_CHUNK_BYTES."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        assert isinstance(stream, httpx.SyncByteStream)
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            for start in range(0, len(chunk), RAW_CHUNK_BYTES):
                yield chunk[start : start + RAW_CHUNK_BYTES]

    def close(self) -> None:
        self._stream.close()


# --------------------------------------------------------------------------- the guard


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
            request.url, lambda host, port: _lookup(host, port, self._resolve, timeout)
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
    _checked_addresses(_parse_http_url(url), resolve or _resolve_host)


def _parse_http_url(url: str) -> httpx.URL:
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
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    try:
        resolved = resolve(host, port)
    except OSError as exc:
        raise FetchError(f"could not resolve {host}: {exc}", url=url) from exc
    except _LookupTimeout as exc:
        raise FetchError(str(exc), url=url) from exc
    if not resolved:
        raise FetchError(f"could not resolve {host}: no addresses", url=url)
    return [ipaddress.ip_address(address.partition("%")[0]) for address in resolved]


def _literal_address(host: str) -> IPAddress | None:
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


# --------------------------------------------------------------------------- fetching


def fetch_feed(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
) -> FetchResult:
    """GET a feed, conditionally when we hold its ETag or Last-Modified.

    A 304 answer gives ``not_modified=True`` and no content.
    """
    headers = {"Accept": FEED_ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return _fetch(client, url, headers=headers, max_bytes=max_bytes)


def fetch_page(client: httpx.Client, url: str, *, max_bytes: int) -> FetchResult:
    """GET an article page (unconditionally)."""
    return _fetch(client, url, headers={}, max_bytes=max_bytes)


_CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since")


def _fetch(
    client: httpx.Client, url: str, *, headers: Mapping[str, str], max_bytes: int
) -> FetchResult:
    timeout = client.timeout.read or 0.0
    total = timeout * DEADLINE_FACTOR
    parsed = _parse_http_url(url)
    conditional = any(name in headers for name in _CONDITIONAL_HEADERS)
    with _request_deadline(total) as deadline:
        try:
            with client.stream("GET", parsed, headers=headers) as response:
                return _read_response(
                    response, url, conditional=conditional, max_bytes=max_bytes, deadline=deadline
                )
        except httpx.TooManyRedirects as exc:
            raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})", url=url) from exc
        except httpx.TimeoutException as exc:
            if isinstance(exc.__cause__, _LookupTimeout):
                raise FetchError(str(exc.__cause__), url=url) from exc
            if deadline is not None and time.monotonic() >= deadline:
                message = f"server too slow: no complete answer within {total:g}s (deadline)"
                raise FetchError(message, url=url) from exc
            raise FetchError(f"timed out after {timeout:g}s", url=url) from exc
        except httpx.HTTPError as exc:
            raise FetchError(_describe_error(exc), url=url) from exc


def _read_response(
    response: httpx.Response,
    url: str,
    *,
    conditional: bool,
    max_bytes: int,
    deadline: float | None,
) -> FetchResult:
    status = response.status_code
    logger.debug("%s: HTTP %d from %s", url, status, response.url)
    if status == 304 and conditional:
        return _result(response, url, b"", not_modified=True)
    if not 200 <= status < 300:
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        retry = response.headers.get("retry-after", "").strip()[:40]
        hint = f" (Retry-After: {retry})" if retry and status in (429, 503) else ""
        raise HTTPStatusError(
            f"HTTP {status}{reason}{hint}", url=url, status=status, headers=_lowered(response)
        )
    return _result(response, url, _read_body(response, url, max_bytes, deadline))


def _read_body(response: httpx.Response, url: str, max_bytes: int, deadline: float | None) -> bytes:
    """The decompressed body, refused as soon as it passes ``max_bytes`` or the deadline."""
    _check_declared_length(response, url, max_bytes)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"body larger than {max_bytes} bytes", url=url)
        if deadline is not None and time.monotonic() > deadline:
            raise FetchError("server too slow: body not complete before the deadline", url=url)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_declared_length(response: httpx.Response, url: str, max_bytes: int) -> None:
    """Refuse before reading when an unencoded body announces it is too big."""
    if _codings(response.headers):
        return
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"body of {declared} bytes is larger than {max_bytes}", url=url)


def _result(
    response: httpx.Response, url: str, content: bytes, *, not_modified: bool = False
) -> FetchResult:
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        content=content,
        headers=_lowered(response),
        not_modified=not_modified,
        permanent_redirect=_permanent_target(response),
    )


def _lowered(response: httpx.Response) -> dict[str, str]:
    return {key.lower(): value for key, value in response.headers.items()}


def _permanent_target(response: httpx.Response) -> str | None:
    """Where the leading run of 301/308 answers points, or None if the first hop was not one.

    A temporary hop ends the run: a feed moved for good to B that redirects for now
    to C should be updated to B, not C.
    """
    hops = [*response.history, response]
    permanent = 0
    while permanent < len(response.history) and hops[permanent].status_code in (301, 308):
        permanent += 1
    return str(hops[permanent].url) if permanent else None


def _describe_error(exc: httpx.HTTPError) -> str:
    """A short, plain-words reason for an httpx failure."""
    text = str(exc)
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text.lower():
            return "connection refused"
        if "name or service not known" in text.lower() or "nodename" in text.lower():
            return "could not resolve host name"
        return f"could not connect: {text}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported URL scheme: {text}"
    if isinstance(exc, httpx.DecodingError):
        return f"could not decode the response body: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnected" in text.lower():  # closed or reset before answering
            return f"connection lost: {text}"
        return f"server broke the HTTP protocol: {text}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {text or 'reset by the server'}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- politeness

Item = TypeVar("Item")
Result = TypeVar("Result")


def host_key(url: str) -> str:
    """What the per-host limit counts connections by: scheme, host and port."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"


def polite_map(
    items: Iterable[Item],
    work: Callable[[Item], Result],
    *,
    key: Callable[[Item], Hashable],
    concurrency: int,
    per_host: int,
    stop: threading.Event | None = None,
) -> Iterator[Result]:
    """Run ``work`` over ``items`` on ``concurrency`` threads, never more than ``per_host``
    at once for items with the same ``key``; yield results as they complete.

    A host with many feeds waits its turn without holding a thread, so one slow site
    cannot starve the others. ``work`` must not raise. Once ``stop`` is set nothing new
    starts; the generator ends after the items in flight.
    """
    dispatcher = _PoliteDispatcher(work, key, max(1, per_host), stop)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch") as pool:
        dispatcher.start(pool, items, max(1, concurrency))
        try:
            yield from dispatcher.results()
        finally:  # the caller stopped early (or raised): start nothing more
            dispatcher.halt()


class _PoliteDispatcher(Generic[Item, Result]):
    """Hands items to the pool as threads and hosts free up (see ``polite_map``)."""

    def __init__(
        self,
        work: Callable[[Item], Result],
        key: Callable[[Item], Hashable],
        per_host: int,
        stop: threading.Event | None,
    ) -> None:
        self._work = work
        self._key = key
        self._per_host = per_host
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, deque[Item]] = {}
        self._ready: deque[Hashable] = deque()  # hosts with waiting items and a free slot
        self._busy: Counter[Hashable] = Counter()
        self._in_flight = 0
        self._halted = False
        self._done: queue.SimpleQueue[Result | None] = queue.SimpleQueue()

    def start(self, pool: ThreadPoolExecutor, items: Iterable[Item], slots: int) -> None:
        self._pool = pool
        for item in items:
            host = self._key(item)
            if host not in self._waiting:
                self._waiting[host] = deque()
                self._ready.append(host)
            self._waiting[host].append(item)
        with self._lock:
            for _ in range(slots):
                self._submit_next()
            if self._in_flight == 0:
                self._done.put(None)

    def halt(self) -> None:
        self._halted = True

    def results(self) -> Iterator[Result]:
        while (result := self._done.get()) is not None:
            yield result

    def _submit_next(self) -> None:
        """Start the next item whose host has a free slot (call with the lock held)."""
        if self._halted or self._stop.is_set() or not self._ready:
            return
        host = self._ready.popleft()
        item = self._waiting[host].popleft()
        self._busy[host] += 1
        if self._waiting[host] and self._busy[host] < self._per_host:
            self._ready.append(host)
        self._in_flight += 1
        self._pool.submit(self._run, host, item)

    def _run(self, host: Hashable, item: Item) -> None:
        """On a pool thread: do the work, then free the slot and start the next item."""
        try:
            self._done.put(self._work(item))
        except Exception:  # a bug in ``work``: lose this item, never the whole batch
            logger.exception("fetch worker failed")
        with self._lock:
            self._busy[host] -= 1
            if self._waiting[host] and self._busy[host] == self._per_host - 1:
                self._ready.append(host)
            self._in_flight -= 1
            self._submit_next()
            if self._in_flight == 0:
                self._done.put(None)


# How often a thread waiting for a site's slot looks at the stop event.
STOP_POLL_SECONDS = 0.1


class HostSlots:
    """At most ``limit`` holders at once per site (``host_key``), over every thread that
    shares this object: the article pages of all the feeds in flight share one, so a
    site's pages wait their turn whichever feed listed them.

    ``with slots.hold(url, stop=event):`` waits for a free slot. A thread that has to
    wait gives up with Stopped once ``stop`` is set. One counter per site, made when
    first needed and dropped when idle; ``limit`` may change at any time (holders
    above a lowered limit finish, newcomers wait).
    """

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = max(1, limit)
        self._sites: dict[str, _Site] = {}

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        with self._lock:
            self._limit = max(1, value)
            for site in self._sites.values():
                site.freed.notify_all()

    def waiting(self, url: str) -> int:
        """Threads waiting for a slot on ``url``'s site now."""
        with self._lock:
            site = self._sites.get(host_key(url))
            return site.waiting if site else 0

    @contextmanager
    def hold(self, url: str, *, stop: threading.Event | None = None) -> Iterator[None]:
        key = host_key(url)
        self._acquire(key, stop)
        try:
            yield
        finally:
            self._release(key)

    def _acquire(self, key: str, stop: threading.Event | None) -> None:
        with self._lock:
            site = self._sites.get(key)
            if site is None:
                site = self._sites[key] = _Site(threading.Condition(self._lock))
            if site.busy < self._limit:
                site.busy += 1
                return
            site.waiting += 1
            try:
                while True:
                    if stop is not None and stop.is_set():
                        raise Stopped(f"stopping: gave up waiting for a slot on {key}")
                    if site.busy < self._limit:
                        break
                    site.freed.wait(STOP_POLL_SECONDS if stop is not None else None)
                site.busy += 1
            finally:
                site.waiting -= 1
                self._forget_if_idle(key, site)

    def _release(self, key: str) -> None:
        with self._lock:
            site = self._sites[key]
            site.busy -= 1
            if site.waiting:
                site.freed.notify()
            self._forget_if_idle(key, site)

    def _forget_if_idle(self, key: str, site: _Site) -> None:
        if not site.busy and not site.waiting:
            del self._sites[key]


@dataclass
class _Site:
    """One site's slots (guarded by HostSlots' lock, which ``freed`` shares)."""

    freed: threading.Condition
    busy: int = 0
    waiting: int = 0


def ping_websub_hub(client: httpx.Client, hub_url: str, topic_urls: Iterable[str]) -> None:
    """Tell a WebSub hub these feeds changed (``hub.mode=publish``, one POST per feed).

    Raises FetchError (HTTPStatusError for an error status) on the first failure.
    """
    for topic in topic_urls:
        try:
            response = client.post(hub_url, data={"hub.mode": "publish", "hub.url": topic})
        except httpx.HTTPError as exc:
            raise FetchError(f"WebSub hub: {_describe_error(exc)}", url=hub_url) from exc
        if response.status_code >= 400:
            raise HTTPStatusError(
                f"WebSub hub answered HTTP {response.status_code}",
                url=hub_url,
                status=response.status_code,
            )
