"""Tests for aggregator.fetch.pools: a connection pool per site.

Most tests hand ``PoolPerSite`` fake pools and a fake clock, so they show which pool
each request goes to and when idle pools are closed without any socket. Loopback
servers then show the real thing: connections are kept alive per site and reused, and
behind the private-address guard a connection made for one host name never carries a
request for another name at the same address.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest

from aggregator.config import Settings
from aggregator.fetch import fetch_page, guard, make_client
from aggregator.fetch.guard import GuardedTransport
from aggregator.fetch.pools import PoolPerSite, site_of
from aggregator.fetch.transport import SITE_KEEPALIVE, DeadlineTransport


class FakePool:
    """Answers every request with a two-part body; records requests and closing."""

    def __init__(self, fail: bool = False) -> None:
        self.requests: list[str] = []
        self.closed = False
        self.fail = fail

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        if self.fail:
            raise httpcore.ConnectError("refused")
        url = request.url
        port = f":{url.port}" if url.port else ""
        self.requests.append(
            f"{url.scheme.decode()}://{url.host.decode()}{port}{url.target.decode()}"
        )
        return httpcore.Response(200, content=[b"he", b"llo"])

    def close(self) -> None:
        self.closed = True


class Sites:
    """A ``PoolPerSite`` over fake pools and a clock the test moves."""

    def __init__(self, most_idle: int = 2, expiry: float = 5.0) -> None:
        self.now = 0.0
        self.made: list[FakePool] = []
        self.pools = PoolPerSite(
            self._make, most_idle=most_idle, keepalive_expiry=expiry, clock=lambda: self.now
        )

    def _make(self) -> httpcore.ConnectionPool:
        self.made.append(FakePool())
        return self.made[-1]  # type: ignore[return-value]  # duck-typed for the test

    def get(self, url: str) -> httpcore.Response:
        """A request whose response is still open (in flight)."""
        return self.pools.handle_request(httpcore.Request("GET", url))

    def fetch(self, url: str) -> bytes:
        """A whole request: sent, body read, response closed."""
        response = self.get(url)
        body = b"".join(response.stream)  # type: ignore[arg-type]  # a sync stream
        response.close()
        return body


def test_each_site_has_its_own_pool_and_keeps_it() -> None:
    sites = Sites()
    assert sites.fetch("http://a.test/1") == b"hello"
    sites.fetch("http://b.test/1")
    sites.fetch("http://a.test/2")
    sites.fetch("https://a.test/3")  # another scheme (and port): another site
    sites.fetch("http://a.test:8080/4")
    assert [pool.requests for pool in sites.made] == [
        ["http://a.test/1", "http://a.test/2"],
        ["http://b.test/1"],
        ["https://a.test/3"],
        ["http://a.test:8080/4"],
    ]


def test_a_site_is_the_address_and_the_name_connected_for() -> None:
    # What the guard sends: the checked address in the URL, the host's name as the TLS
    # server name (https) or in the Host header (http).
    def pinned(url: str, name: str) -> httpcore.Request:
        extensions = {"sni_hostname": name} if url.startswith("https") else {}
        return httpcore.Request("GET", url, headers={"Host": name}, extensions=extensions)

    a, b = pinned("https://192.0.2.7/", "a.test"), pinned("https://192.0.2.7/", "b.test")
    assert site_of(a) == (b"https", b"192.0.2.7", 443, b"a.test")
    assert site_of(a) != site_of(b)  # one CDN address, two hosts: two pools
    assert site_of(pinned("http://192.0.2.7/", "A.Test")) == (b"http", b"192.0.2.7", 80, b"a.test")
    assert site_of(pinned("http://192.0.2.7/", "a.test")) != site_of(
        pinned("http://192.0.2.7/", "b.test")
    )
    plain = httpcore.Request("GET", "http://feed.test:8080/", headers={"Host": "feed.test:8080"})
    assert site_of(plain) == (b"http", b"feed.test", 8080, b"feed.test:8080")


def test_idle_pools_beyond_the_limit_close_least_recently_used_first() -> None:
    sites = Sites(most_idle=2)
    for url in ("http://a.test/", "http://b.test/", "http://a.test/again", "http://c.test/"):
        sites.fetch(url)
    a, b, c = sites.made
    assert (a.closed, b.closed, c.closed) == (False, True, False)  # b was used longest ago
    sites.fetch("http://b.test/back")  # a new pool for b; a is now the oldest
    assert a.closed and len(sites.made) == 4 and not sites.made[3].closed


def test_pools_whose_connections_expired_are_closed() -> None:
    sites = Sites(most_idle=10, expiry=5.0)
    sites.fetch("http://a.test/")
    sites.now = 3.0
    sites.fetch("http://b.test/")
    sites.now = 5.5  # a's last request ended 5.5 s ago, b's 2.5 s ago
    sites.fetch("http://c.test/")
    a, b, c = sites.made
    assert (a.closed, b.closed, c.closed) == (True, False, False)


def test_a_pool_with_a_request_in_flight_is_never_closed() -> None:
    sites = Sites(most_idle=0, expiry=1.0)
    open_response = sites.get("http://slow.test/")  # still reading its body
    sites.now = 100.0
    sites.fetch("http://other.test/")  # idle at once, beyond most_idle=0: closed
    slow, other = sites.made
    assert other.closed and not slow.closed
    open_response.close()  # done now: idle, and over the limit
    assert slow.closed


def test_a_failed_request_releases_its_pool_and_raises() -> None:
    pools = PoolPerSite(lambda: FakePool(fail=True), most_idle=0, keepalive_expiry=5.0)  # type: ignore[arg-type, return-value]
    with pytest.raises(httpcore.ConnectError):
        pools.handle_request(httpcore.Request("GET", "http://down.test/"))
    assert pools._idle == 0 and not pools._sites  # released, then closed (most_idle=0)


def test_closing_closes_every_pool() -> None:
    sites = Sites(most_idle=10)
    sites.fetch("http://a.test/")
    in_flight = sites.get("http://b.test/")
    sites.pools.close()
    assert all(pool.closed for pool in sites.made)
    in_flight.close()  # a response closed after the pools: nothing left to release into
    assert sites.pools._idle == 0 and not sites.pools._sites


# --------------------------------------------------------------------------- real sockets


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: CountingServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.peers.add(self.client_address)
        self.server.hosts.setdefault(self.headers.get("Host", ""), set()).add(self.client_address)
        body = b"<html><body><p>page</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingServer(ThreadingHTTPServer):
    """Records the client address (so the connection) of every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.peers: set[tuple[str, int]] = set()
        self.hosts: dict[str, set[tuple[str, int]]] = {}  # the connections of each Host


@pytest.fixture
def two_sites(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CountingServer]]:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    servers = [CountingServer(), CountingServer()]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,)) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()


def test_connections_are_kept_alive_per_site(two_sites: list[CountingServer]) -> None:
    settings = Settings.model_validate({"allow_private_addresses": True})
    urls = [f"http://127.0.0.1:{server.server_address[1]}/page" for server in two_sites]
    with make_client(settings, guard=True) as client:
        for _ in range(3):
            for url in urls:
                assert b"page" in fetch_page(client, url, max_bytes=10_000).content
    # three requests to each site, each over one connection kept alive
    assert [len(server.peers) for server in two_sites] == [1, 1]


def test_guarded_connections_are_kept_alive_per_host_name(
    two_sites: list[CountingServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two host names at one address (a CDN), fetched through the guard with the
    # default settings: the loopback server stands for a public address here.
    checked = guard._blocked_reason
    monkeypatch.setattr(guard, "_blocked_reason", lambda a: "" if a.is_loopback else checked(a))
    port = two_sites[0].server_address[1]
    names = ("a.test", "b.test")
    with make_client(Settings(), guard=True, resolve=lambda host, port: ["127.0.0.1"]) as client:
        assert isinstance(client._transport, GuardedTransport)
        for _ in range(3):
            for name in names:
                page = fetch_page(client, f"http://{name}:{port}/page", max_bytes=10_000)
                assert b"page" in page.content
    hosts = two_sites[0].hosts
    # three requests a name, each name over one connection of its own
    assert sorted(hosts) == [f"{name}:{port}" for name in names]
    assert [len(connections) for connections in hosts.values()] == [1, 1]
    assert len(two_sites[0].peers) == 2


def test_transport_errors_still_map_to_httpx_errors() -> None:
    settings = Settings.model_validate({"allow_private_addresses": True, "timeout": "2s"})
    with make_client(settings, guard=True) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("http://127.0.0.1:9/")  # the discard port: nothing listens


def test_only_transports_keeping_connections_alive_pool_them_per_site() -> None:
    per_site = DeadlineTransport(httpx.Limits(max_keepalive_connections=40))._pool
    assert isinstance(per_site, PoolPerSite)
    assert per_site._most_idle == 40 // SITE_KEEPALIVE  # at most 40 idle connections in all
    none_kept = DeadlineTransport(httpx.Limits(max_keepalive_connections=0))._pool
    assert isinstance(none_kept, httpcore.ConnectionPool)
    never_expiring = DeadlineTransport(
        httpx.Limits(max_keepalive_connections=8, keepalive_expiry=None)
    )._pool
    assert isinstance(never_expiring, PoolPerSite) and never_expiring._expiry == math.inf
