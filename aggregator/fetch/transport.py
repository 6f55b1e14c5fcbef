"""The transports under every client: sockets bounded by the request's deadline, and
bodies read in small, bounded steps.

``DeadlineTransport`` is httpx's own transport (pooling, exception mapping) over a
network backend whose connects, reads, writes and TLS handshakes all end by the
request's deadline, with the name lookup inside it too. ``SafeBodyTransport`` keeps
httpx's eager body reads and decompression within bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from aggregator.fetch.deadline import time_left
from aggregator.fetch.dns import system_addresses
from aggregator.fetch.guard import literal_address
from aggregator.fetch.pools import PoolPerSite

# Raw body chunks are cut to this size before httpx decompresses them: deflate expands
# at most ~1032x, so one decode step can never produce more than ~4 MB at once.
RAW_CHUNK_BYTES = 4096
# Idle connections kept per site when connections are kept alive: fetches of one site
# at once are bounded by its per-host limit (1 for feeds and 2 for pages by default).
SITE_KEEPALIVE = 4
# Only codings whose expansion is bounded per input byte; see SafeBodyTransport.
ACCEPT_ENCODING = "gzip, deflate"


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and handshake ends by the deadline.

    httpx's timeouts apply per socket operation, so a server sending one byte a second
    (of the headers or of the body) would never trip them; this bounds the sum.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = time_left(timeout, httpcore.ConnectTimeout)
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
        literal = literal_address(host) is not None
        addresses = [host] if literal else system_addresses(host, port, timeout)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            left = time_left(timeout, httpcore.ConnectTimeout)
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


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport (pooling, exception mapping) over the deadline backend."""

    def __init__(self, limits: httpx.Limits) -> None:
        # Loads the CA store (some 15 ms): once, for httpx's own pool (replaced below)
        # and for all of ours, rather than once each.
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)

        def pool(max_keepalive_connections: int | None) -> httpcore.ConnectionPool:
            return httpcore.ConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=_DeadlineBackend(),
            )

        keepalive = limits.max_keepalive_connections
        if not keepalive:  # 0: no idle connections to look through; None: no bound at all
            self._pool = pool(keepalive)
            return
        # A pool per site (pools.py), keeping at most as many idle connections as
        # ``limits`` says in all: SITE_KEEPALIVE each, for the most recently used sites.
        self._pool = PoolPerSite(  # type: ignore[assignment]  # httpcore's interface
            lambda: pool(SITE_KEEPALIVE),
            most_idle=max(1, keepalive // SITE_KEEPALIVE),
            keepalive_expiry=math.inf
            if limits.keepalive_expiry is None
            else limits.keepalive_expiry,
        )


class SafeBodyTransport(httpx.BaseTransport):
    """Keeps httpx's eager body reads and decompression within bounds.

    httpx reads every redirect body in full and decompresses each raw chunk in one
    step, so it discards redirect bodies (we never use them), cuts compressed chunks small,
    and refuses stacked encodings (``gzip, gzip`` multiplies the expansion).
    """

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        codings = content_codings(response.headers)
        if codings > 1:
            response.close()
            raise httpx.DecodingError("stacked content encodings are refused", request=request)
        if response.has_redirect_location:
            response.close()
            stream: httpx.SyncByteStream = httpx.ByteStream(b"")
        elif codings:
            stream = _SmallChunks(response.stream)
        else:  # nothing to decompress: the socket's own reads (at most 64 KB) pass as they
            # come, without ~20 more steps through httpx's decoders for a page of 80 KB
            assert isinstance(response.stream, httpx.SyncByteStream)
            stream = response.stream
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._transport.close()


def content_codings(headers: httpx.Headers) -> int:
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
