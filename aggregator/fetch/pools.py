"""Connection pools kept per site, so that a request only ever looks at its own site's
connections.

httpcore's connection pool checks every connection it holds each time a request
starts or ends, and asks the operating system (a ``poll``) whether each idle one was
closed by its server. One pool shared by every site of a refresh holds dozens of idle
connections, so each page paid dozens of system calls, each one a hand-over of the
GIL to the storing thread and back: measured on the bench's 200 feeds over 40 sites,
37 polls a request and 4.5 s of the main process's 21 s of CPU. Kept per site, a pool
holds what that site's limit of fetches at once lets it hold (one or two
connections), and checks only those.

``PoolPerSite`` bounds the whole as the single pool did: pools whose connections all
expired are closed, and beyond ``most_idle`` sites the least recently used idle ones
are closed too. A pool with a request in flight is never closed.

A site is the address connected to *and the name the connection is made for*: the
private-address guard sends each request to the address it checked, with the host's
name as the TLS server name and the ``Host`` header (guard.py). httpcore matches a
kept-alive connection by address alone, so a shared pool could send a request for one
host over a connection verified for another host behind the same (CDN) address; a
pool per name never does, so guarded clients keep connections alive too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpcore

__all__ = ["PoolPerSite", "site_of"]

Site = tuple[bytes, bytes, int, bytes]  # scheme, host, port, the name connected for


def site_of(request: httpcore.Request) -> Site:
    """Where a request's connection goes (scheme, address or host, port) and the name
    it is made for: the TLS server name when one is set (a request the guard pinned
    to an address), else the ``Host`` header (the URL's own host, or the guard's)."""
    origin = request.url.origin
    server_name = request.extensions.get("sni_hostname")
    if isinstance(server_name, str):
        name = server_name.encode("ascii", "replace")
    else:
        name = next((value for key, value in request.headers if key.lower() == b"host"), b"")
    return (origin.scheme, origin.host, origin.port, name.lower())


@dataclass
class _SitePool:
    pool: httpcore.ConnectionPool
    in_flight: int = 0
    last_used: float = 0.0  # monotonic seconds, when its last request ended


class PoolPerSite:
    """An httpcore request interface (``handle_request``, ``close``) that sends each
    request through the pool of its site (``site_of``: scheme, host, port and the name
    connected for), made by ``make_pool`` on the site's first request.

    Idle pools are closed when ``keepalive_expiry`` has passed since their last request
    (every connection in them has expired then), and beyond ``most_idle`` of them the
    least recently used are closed: at most ``most_idle`` sites keep idle connections,
    each no more than its pool keeps alive.
    """

    def __init__(
        self,
        make_pool: Callable[[], httpcore.ConnectionPool],
        *,
        most_idle: int,
        keepalive_expiry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_pool = make_pool
        self._most_idle = most_idle
        self._expiry = keepalive_expiry
        self._clock = clock
        self._lock = threading.Lock()
        # Least recently used first: a site is moved to the end when it is used.
        self._sites: dict[Site, _SitePool] = {}
        self._idle = 0  # pools without a request in flight

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        site = site_of(request)
        with self._lock:
            entry = self._sites.pop(site, None)
            if entry is None:
                entry = _SitePool(self._make_pool())
            elif not entry.in_flight:
                self._idle -= 1
            self._sites[site] = entry
            entry.in_flight += 1
        try:
            response = entry.pool.handle_request(request)
        except BaseException:
            self._release(site, entry)
            raise
        assert isinstance(response.stream, Iterable)  # a sync pool's body
        released = _ReleasingStream(response.stream, lambda: self._release(site, entry))
        return httpcore.Response(
            response.status,
            headers=response.headers,
            content=released,
            extensions=response.extensions,
        )

    def _release(self, site: Site, entry: _SitePool) -> None:
        """One request of ``entry`` ended (its response closed, or it failed)."""
        with self._lock:
            entry.in_flight -= 1
            entry.last_used = self._clock()
            if self._sites.get(site) is entry:  # not closed meanwhile (``close``)
                if not entry.in_flight:
                    self._idle += 1
                self._sites[site] = self._sites.pop(site)  # the most recently used now
            closing = self._idle_to_close()
        for pool in closing:
            pool.close()

    def _idle_to_close(self) -> list[httpcore.ConnectionPool]:
        """Pools to close, taken out of ``_sites`` (under the lock): the idle ones whose
        connections all expired, then the least recently used beyond ``most_idle``."""
        now = self._clock()
        surplus = self._idle - self._most_idle
        sites = []
        for site, entry in self._sites.items():  # least recently used first
            if entry.in_flight:
                continue
            if surplus <= 0 and now - entry.last_used < self._expiry:
                break  # and every later one was used more recently
            sites.append(site)
            surplus -= 1
        self._idle -= len(sites)
        return [self._sites.pop(site).pool for site in sites]

    def close(self) -> None:
        with self._lock:
            pools = [entry.pool for entry in self._sites.values()]
            self._sites.clear()
            self._idle = 0
        for pool in pools:
            pool.close()

    def __enter__(self) -> PoolPerSite:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ReleasingStream:
    """A response body that tells its pool when it is closed (once)."""

    def __init__(self, stream: Iterable[bytes], release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
