"""Tests for aggregator.fetcher.

Most tests run in-process through httpx.MockTransport. Host names are resolved by a fake
resolver and never connected to. One loopback server checks what only real sockets show:
the guard refuses before connecting, and the total deadline stops a trickling server.
A name lookup that hangs is faked by patching socket.getaddrinfo: nothing leaves loopback.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from aggregator.config import Settings
from aggregator.errors import BlockedURL, FetchError, HTTPStatusError, ResponseTooLarge, Stopped
from aggregator.fetch import (
    FEED_ACCEPT,
    HostSlots,
    check_url_allowed,
    fetch_feed,
    fetch_page,
    host_key,
    make_client,
    polite_map,
)
from aggregator.fetch.dns import LookupPool as _LookupPool
from aggregator.fetch.fetcher import DEADLINE_FACTOR
from aggregator.fetch.guard import GuardedTransport

SETTINGS = Settings.model_validate({"timeout": "2s"})
# Below the one-second grain of feeds.yaml, to keep the deadline tests quick.
SHORT_TIMEOUT = timedelta(milliseconds=400)
BASE = "http://feed.test"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
Handler = Callable[[httpx.Request], httpx.Response]


def redirect(status: int, location: str) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


@functools.cache
def gzip_bomb(size: int = 50_000_000) -> bytes:
    """``size`` zero bytes, gzipped (about 50 KB), built without holding them all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1_000_000)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


def feed_route(request: httpx.Request) -> httpx.Response:
    """A small feed with validators; answers 304 when both validators match."""
    if (
        request.headers.get("if-none-match") == '"v1"'
        and request.headers.get("if-modified-since") == LAST_MODIFIED
    ):
        return httpx.Response(304, headers={"ETag": '"v1"'})
    headers = {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED, "X-Mixed-Case": "yes"}
    return httpx.Response(200, headers=headers, content=b"<rss/>")


def hop_route(request: httpx.Request) -> httpx.Response:
    """/hop/N redirects N more times, then serves the feed."""
    left = int(request.url.path.rsplit("/", 1)[1])
    return redirect(302, f"/hop/{left - 1}") if left else feed_route(request)


def timeout_route(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def refused_route(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def bomb_route(request: httpx.Request) -> httpx.Response:
    # An iterator, so httpx does not decode it eagerly inside the handler; one chunk,
    # as a server could send it, so only the fetcher's own chunking bounds memory.
    headers = {"Content-Encoding": "gzip"}
    status = 302 if request.url.path == "/redirect-bomb" else 200
    if status == 302:
        headers["Location"] = "/feed"
    return httpx.Response(status, headers=headers, content=iter([gzip_bomb()]))


ROUTES: dict[str, Handler] = {
    "/feed": feed_route,
    "/moved": lambda r: redirect(301, "/feed"),
    "/moved-308": lambda r: redirect(308, "/feed"),
    "/temporary": lambda r: redirect(302, "/feed"),
    "/moved-to-temporary": lambda r: redirect(301, "/temporary"),
    "/temporary-to-moved": lambda r: redirect(307, "/moved"),
    "/missing": lambda r: httpx.Response(404),
    "/gone": lambda r: httpx.Response(410),
    "/broken": lambda r: httpx.Response(500),
    "/busy": lambda r: httpx.Response(429, headers={"Retry-After": "120"}),
    "/no-location": lambda r: httpx.Response(302),
    "/big-declared": lambda r: httpx.Response(200, content=bytes(20_000)),
    "/big-streamed": lambda r: httpx.Response(200, content=iter([bytes(3000)] * 10)),
    "/bomb": bomb_route,
    "/redirect-bomb": bomb_route,
    "/double-gzip": lambda r: httpx.Response(
        200, headers={"Content-Encoding": "gzip, gzip"}, content=iter([b"x"])
    ),
    "/timeout": timeout_route,
    "/refused": refused_route,
}


def route(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.startswith("/hop/"):
        return hop_route(request)
    return ROUTES[path](request)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(SETTINGS, guard=False, transport=httpx.MockTransport(route)) as client:
        yield client


# --------------------------------------------------------------------------- fetching


def test_200_captures_validators_and_lowercases_headers(client: httpx.Client) -> None:
    result = fetch_feed(client, f"{BASE}/feed", etag=None, last_modified=None, max_bytes=10_000)
    assert (result.status, result.content, result.not_modified) == (200, b"<rss/>", False)
    assert (result.etag, result.last_modified) == ('"v1"', LAST_MODIFIED)
    assert type(result.headers) is dict
    assert result.headers["x-mixed-case"] == "yes"
    assert result.final_url == result.url == f"{BASE}/feed"
    assert result.permanent_redirect is None


def test_sends_user_agent_and_conditional_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return feed_route(request)

    with make_client(SETTINGS, guard=False, transport=httpx.MockTransport(handler)) as client:
        result = fetch_feed(
            client, f"{BASE}/feed", etag='"v1"', last_modified=LAST_MODIFIED, max_bytes=10_000
        )
    assert result.not_modified
    assert result.content == b""
    assert result.status == 304
    headers = seen[0].headers
    assert headers["if-none-match"] == '"v1"'
    assert headers["if-modified-since"] == LAST_MODIFIED
    assert headers["user-agent"] == SETTINGS.effective_user_agent
    assert headers["accept"] == FEED_ACCEPT  # feed formats first, for content negotiation


def test_no_conditional_headers_without_validators(client: httpx.Client) -> None:
    result = fetch_feed(client, f"{BASE}/feed", etag=None, last_modified=None, max_bytes=10_000)
    assert not result.not_modified


def test_page_fetch_treats_unasked_304_as_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "if-none-match" not in request.headers
        return httpx.Response(304)

    with make_client(SETTINGS, guard=False, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(HTTPStatusError) as info:
            fetch_page(client, f"{BASE}/page", max_bytes=10_000)
    assert info.value.status == 304


@pytest.mark.parametrize(
    ("path", "status"),
    [("/missing", 404), ("/gone", 410), ("/broken", 500), ("/busy", 429), ("/no-location", 302)],
)
def test_error_status_raises_with_status(client: httpx.Client, path: str, status: int) -> None:
    with pytest.raises(HTTPStatusError) as info:
        fetch_page(client, f"{BASE}{path}", max_bytes=10_000)
    assert info.value.status == status
    assert info.value.url == f"{BASE}{path}"
    assert str(status) in str(info.value)


def test_error_status_keeps_retry_after_for_the_scheduler(client: httpx.Client) -> None:
    # Issue 3: a 429/503 says when to come back; the scheduler needs the header.
    with pytest.raises(HTTPStatusError) as info:
        fetch_feed(client, f"{BASE}/busy", etag=None, last_modified=None, max_bytes=10_000)
    assert info.value.headers["retry-after"] == "120"
    assert "Retry-After: 120" in str(info.value)


@pytest.mark.parametrize(
    ("path", "permanent"),
    [
        ("/hop/5", None),
        ("/temporary", None),
        ("/moved", f"{BASE}/feed"),
        ("/moved-308", f"{BASE}/feed"),
        # Only the leading run of permanent hops counts: the feed moved for good to
        # /temporary, which redirects for now.
        ("/moved-to-temporary", f"{BASE}/temporary"),
        ("/temporary-to-moved", None),
    ],
)
def test_redirects_followed(client: httpx.Client, path: str, permanent: str | None) -> None:
    result = fetch_feed(client, f"{BASE}{path}", etag=None, last_modified=None, max_bytes=10_000)
    assert result.content == b"<rss/>"
    assert result.url == f"{BASE}{path}"
    assert result.final_url == f"{BASE}/feed" or path.startswith("/hop/")
    assert result.permanent_redirect == permanent


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/hop/6", FetchError, "too many redirects"),
        ("/timeout", FetchError, "timed out after 2s"),
        ("/refused", FetchError, "connection refused"),
        ("/big-declared", ResponseTooLarge, "larger than 10000"),
        ("/big-streamed", ResponseTooLarge, "larger than 10000"),
        ("/bomb", ResponseTooLarge, "larger than 10000"),
        ("/double-gzip", FetchError, "stacked content encodings"),
    ],
)
def test_failures_become_fetch_errors(
    client: httpx.Client, path: str, error: type[FetchError], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        fetch_page(client, f"{BASE}{path}", max_bytes=10_000)
    assert type(info.value) is error
    assert info.value.url == f"{BASE}{path}"


def test_invalid_url_becomes_fetch_error(client: httpx.Client) -> None:
    with pytest.raises(FetchError, match="invalid URL"):
        fetch_page(client, "http://[::1/", max_bytes=10_000)


@pytest.mark.parametrize("path", ["/bomb", "/redirect-bomb"])
def test_gzip_bomb_is_never_held_in_memory(client: httpx.Client, path: str) -> None:
    """50 MB of zeros arrive as one 50 KB chunk; peak memory stays a few MB."""
    gzip_bomb()  # built before measuring
    tracemalloc.start()
    try:
        try:
            fetch_page(client, f"{BASE}{path}", max_bytes=1_000_000)
        except ResponseTooLarge:
            assert path == "/bomb"
        else:
            assert path == "/redirect-bomb"  # the redirect body is dropped, not decoded
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000


# --------------------------------------------------------------------------- the guard

FAKE_DNS = {
    "fine.test": ["93.184.216.34"],
    "evil.test": ["10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "dual.test": ["2606:2800:220:1::", "93.184.216.34"],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"literal {host!r} must not be looked up")


class Recorder:
    """An inner MockTransport handler that records what would go on the wire."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/to-evil":
            return redirect(302, "http://evil.test/")
        if request.url.path == "/to-loopback":
            return redirect(301, "http://127.0.0.1/")
        if request.url.path == "/to-file":
            return redirect(302, "file:///etc/passwd")
        return httpx.Response(200, content=b"page")


def guarded_client(recorder: Recorder, resolve: Callable[[str, int], list[str]]) -> httpx.Client:
    transport = GuardedTransport(httpx.MockTransport(recorder), resolve=resolve)
    return make_client(SETTINGS, guard=False, transport=transport)


BLOCKED_LITERALS = [
    ("http://127.0.0.1/", "loopback address 127.0.0.1"),
    ("http://2130706433/", "loopback address 127.0.0.1"),
    ("http://0x7f.1/", "loopback address 127.0.0.1"),
    ("http://127.1/", "loopback address 127.0.0.1"),
    ("http://[::1]/", "loopback address ::1"),
    ("http://[::ffff:127.0.0.1]/", "loopback address 127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
    ("http://10.1.2.3/", "private address 10.1.2.3"),
    ("http://192.168.1.1/", "private address 192.168.1.1"),
    ("http://172.16.0.1/", "private address 172.16.0.1"),
    ("http://100.64.0.1/", "shared (carrier-grade NAT) address 100.64.0.1"),
    ("http://0.0.0.0/", "unspecified address 0.0.0.0"),
    ("http://[fe80::1]/", "link-local address fe80::1"),
    ("http://[fc00::1]/", "private address fc00::1"),
    ("http://224.0.0.1/", "multicast address 224.0.0.1"),
    ("http://[2002:7f00:1::]/", "loopback address 127.0.0.1"),  # 6to4
    ("https://[64:ff9b::a00:5]/", "private address 10.0.0.5"),  # NAT64
    ("https://evil.test/", "evil.test resolves to private address 10.0.0.5"),
    ("http://metadata.test/", "link-local address 169.254.169.254"),
    ("http://mixed.test/", "loopback address 127.0.0.1"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("ftp://fine.test/", "scheme 'ftp' is not allowed"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
]


@pytest.mark.parametrize(("url", "reason"), BLOCKED_LITERALS)
def test_check_url_allowed_refuses(url: str, reason: str) -> None:
    with pytest.raises(BlockedURL, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_url_allowed(url, resolve=fake_resolve)


@pytest.mark.parametrize(("url", "reason"), BLOCKED_LITERALS)
def test_guarded_client_refuses_before_sending(url: str, reason: str) -> None:
    recorder = Recorder()
    with guarded_client(recorder, fake_resolve) as client:
        with pytest.raises(BlockedURL) as info:
            fetch_page(client, url, max_bytes=10_000)
    assert reason in str(info.value)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::1]/"]
)
def test_literals_are_parsed_not_resolved(url: str) -> None:
    with pytest.raises(BlockedURL):
        check_url_allowed(url, resolve=no_dns)


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/", "https://[2606:2800:220:1::]/", "https://fine.test/a"]
)
def test_check_url_allowed_passes_public_addresses(url: str) -> None:
    check_url_allowed(url, resolve=fake_resolve)


def test_unresolvable_name_is_a_fetch_error_not_blocked() -> None:
    with pytest.raises(FetchError, match="could not resolve nx.test") as info:
        check_url_allowed("http://nx.test/", resolve=fake_resolve)
    assert not isinstance(info.value, BlockedURL)


@pytest.mark.parametrize("hop", ["/to-evil", "/to-loopback", "/to-file"])
def test_redirect_to_private_address_refused_on_second_hop(hop: str) -> None:
    recorder = Recorder()
    with guarded_client(recorder, fake_resolve) as client:
        with pytest.raises(BlockedURL):
            fetch_page(client, f"http://fine.test{hop}", max_bytes=10_000)
    assert [str(r.url) for r in recorder.requests] == [f"http://93.184.216.34{hop}"]


def test_guard_pins_checked_address_but_keeps_names() -> None:
    recorder = Recorder()
    with guarded_client(recorder, fake_resolve) as client:
        result = fetch_page(client, "https://fine.test:8443/a?b=1", max_bytes=10_000)
    wire = recorder.requests[0]
    assert str(wire.url) == "https://93.184.216.34:8443/a?b=1"
    assert wire.headers["host"] == "fine.test:8443"
    assert wire.extensions["sni_hostname"] == "fine.test"
    assert result.final_url == "https://fine.test:8443/a?b=1"
    assert result.content == b"page"


def test_guard_tries_next_address_when_connect_fails() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.host)
        if ":" in request.url.host:
            raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)
        return httpx.Response(200, content=b"page")

    transport = GuardedTransport(httpx.MockTransport(handler), resolve=fake_resolve)
    with make_client(SETTINGS, guard=False, transport=transport) as client:
        result = fetch_page(client, "http://dual.test/", max_bytes=10_000)
    assert result.content == b"page"
    assert attempts == ["2606:2800:220:1::", "93.184.216.34"]


@pytest.mark.parametrize(("allow", "blocked"), [(False, True), (True, False)])
def test_make_client_guard_follows_settings(allow: bool, blocked: bool) -> None:
    recorder = Recorder()
    settings = Settings.model_validate({"allow_private_addresses": allow})
    with make_client(settings, guard=True, transport=httpx.MockTransport(recorder)) as client:
        if blocked:
            with pytest.raises(BlockedURL):
                fetch_page(client, "http://10.0.0.5/", max_bytes=10_000)
        else:
            assert fetch_page(client, "http://10.0.0.5/", max_bytes=10_000).content == b"page"
    assert len(recorder.requests) == (0 if blocked else 1)


# --------------------------------------------------------------------------- real sockets


class LoopbackHandler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        if self.path == "/trickle":
            self.end_headers()
            self._trickle()
            return
        if self.path == "/trickle-headers":
            self._trickle()  # the headers never end
            return
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"<rss/>")

    def _trickle(self) -> None:
        """One byte every 0.1 s, until the client hangs up (or 10 s pass)."""
        self.wfile.write(b"X-Slow: ")
        try:
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up: that is the point
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), LoopbackHandler)
        self.hits: list[str] = []


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_real_socket_guarded_refuses_unguarded_fetches(loopback: LoopbackServer) -> None:
    url = f"http://127.0.0.1:{loopback.server_address[1]}/feed"
    with make_client(SETTINGS, guard=True) as client:
        with pytest.raises(BlockedURL, match="loopback"):
            fetch_page(client, url, max_bytes=10_000)
    assert loopback.hits == []

    with make_client(SETTINGS, guard=False) as client:
        result = fetch_feed(client, url, etag=None, last_modified=None, max_bytes=10_000)
    assert result.content == b"<rss/>"
    assert loopback.hits == ["/feed"]


def test_real_socket_trickle_stops_at_deadline(loopback: LoopbackServer) -> None:
    url = f"http://127.0.0.1:{loopback.server_address[1]}/trickle"
    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    with make_client(settings, guard=False) as client:
        with pytest.raises(FetchError, match="deadline"):
            fetch_page(client, url, max_bytes=10_000)


def test_real_socket_trickled_headers_stop_at_deadline(loopback: LoopbackServer) -> None:
    # Every read returns a byte well within the read timeout; only the total deadline,
    # enforced on each socket operation, ends it (the body check never runs).
    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    url = f"http://127.0.0.1:{loopback.server_address[1]}/trickle-headers"
    with make_client(settings, guard=False) as client:
        with pytest.raises(FetchError, match="deadline"):
            fetch_feed(client, url, etag=None, last_modified=None, max_bytes=10_000)


# --------------------------------------------------------------------------- DNS lookups


@pytest.fixture
def hanging_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """socket.getaddrinfo hangs on names under slow.test (until the test is over) and
    sends feed.test to 127.0.0.2 (nobody listens: refused), then 127.0.0.1; the names
    it was asked for, in order."""
    asked: list[str] = []
    over = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        asked.append(host)
        if host.endswith("slow.test"):
            over.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host == "feed.test":
            return [
                *real_getaddrinfo("127.0.0.2", port, *args, **kwargs),  # type: ignore[arg-type]
                *real_getaddrinfo("127.0.0.1", port, *args, **kwargs),  # type: ignore[arg-type]
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked
    over.set()


@pytest.mark.parametrize("guard", [True, False])
def test_a_hanging_dns_lookup_cannot_hold_a_fetch_past_its_time(
    hanging_dns: list[str], guard: bool
) -> None:
    # Guarded (article pages) or not (feeds): the lookup runs on a lookup thread and
    # the fetch stops waiting at the connect timeout, well within the deadline.
    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    deadline = SHORT_TIMEOUT.total_seconds() * DEADLINE_FACTOR
    started = time.monotonic()
    with make_client(settings, guard=guard) as client:
        with pytest.raises(FetchError, match="could not resolve dns.slow.test: no answer within"):
            fetch_page(client, "http://dns.slow.test/article", max_bytes=10_000)
    assert time.monotonic() - started < deadline + 0.2
    assert hanging_dns == ["dns.slow.test"]


def test_no_lookup_starts_once_the_deadline_has_passed(hanging_dns: list[str]) -> None:
    # The first hop eats the whole deadline; the redirect's host is never looked up.
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(SHORT_TIMEOUT.total_seconds() * DEADLINE_FACTOR + 0.1)
        return redirect(302, "http://next.slow.test/article")

    def resolve(host: str, port: int) -> list[str]:
        if host in FAKE_DNS:
            return fake_resolve(host, port)
        return [str(info[4][0]) for info in socket.getaddrinfo(host, port)]

    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    transport = GuardedTransport(httpx.MockTransport(handler), resolve=resolve)
    with make_client(settings, guard=False, transport=transport) as client:
        with pytest.raises(FetchError, match="resolve next.slow.test: the total deadline passed"):
            fetch_page(client, "http://fine.test/article", max_bytes=10_000)
    assert hanging_dns == []


def test_names_are_looked_up_and_each_address_tried_in_turn(
    loopback: LoopbackServer, hanging_dns: list[str]
) -> None:
    # feed.test resolves to 127.0.0.2 (refused), then to the server's 127.0.0.1.
    url = f"http://feed.test:{loopback.server_address[1]}/feed"
    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    with make_client(settings, guard=False) as client:
        result = fetch_feed(client, url, etag=None, last_modified=None, max_bytes=10_000)
    assert result.content == b"<rss/>" and result.final_url == url
    assert hanging_dns == ["feed.test", "127.0.0.2", "127.0.0.1"]
    assert loopback.hits == ["/feed"]


def test_lookups_stuck_on_dead_names_do_not_starve_the_others(
    loopback: LoopbackServer, hanging_dns: list[str]
) -> None:
    # Twelve pages on twelve dead names give up at the connect timeout, but their
    # lookups stay stuck until the resolver gives up. A healthy feed fetched meanwhile
    # gets a lookup thread of its own (a fixed pool of eight used to queue it behind
    # them until its own timeout passed).
    settings = Settings.model_validate({"timeout": SHORT_TIMEOUT})
    dead = [f"http://dead{number}.slow.test/article" for number in range(12)]

    def fetch_dead(url: str) -> str:
        with make_client(settings, guard=True) as client:
            try:
                fetch_page(client, url, max_bytes=10_000)
            except FetchError as exc:
                return str(exc)
        return "fetched"

    with ThreadPoolExecutor(len(dead)) as pool:
        failures = list(pool.map(fetch_dead, dead))
    assert all("no answer within" in failure for failure in failures)
    url = f"http://feed.test:{loopback.server_address[1]}/feed"
    with make_client(settings, guard=False) as client:
        result = fetch_feed(client, url, etag=None, last_modified=None, max_bytes=10_000)
    assert result.content == b"<rss/>"
    assert sorted(hanging_dns[:12]) == sorted(f"dead{number}.slow.test" for number in range(12))


def test_lookup_threads_are_added_up_to_the_cap_and_end_when_idle() -> None:
    pool = _LookupPool(2, idle_seconds=0.05)
    release = threading.Event()

    def stuck() -> list[str]:
        release.wait(5)
        return ["192.0.2.1"]

    futures = [pool.submit(stuck) for _ in range(3)]
    for _ in range(250):
        if futures[0].running() and futures[1].running():
            break
        time.sleep(0.02)
    time.sleep(0.05)  # time enough for a third thread, were one (wrongly) started
    assert pool.threads == 2  # the third waits for a free thread
    assert [future.running() for future in futures] == [True, True, False]
    release.set()
    assert [future.result(timeout=5) for future in futures] == [["192.0.2.1"]] * 3
    for _ in range(100):
        if pool.threads == 0:
            break
        time.sleep(0.02)
    assert pool.threads == 0
    assert pool.submit(lambda: ["192.0.2.2"]).result(timeout=5) == ["192.0.2.2"]


def test_reset_connection_is_described_in_words() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)

    with make_client(SETTINGS, guard=False, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(FetchError, match="connection lost"):
            fetch_page(client, f"{BASE}/reset", max_bytes=10_000)


# --------------------------------------------------------------------------- politeness


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://news.test/feed", "https://news.test:"),
        ("https://NEWS.test/other?x=1", "https://news.test:"),
        ("http://news.test:8080/feed", "http://news.test:8080"),
    ],
)
def test_host_key_groups_by_scheme_host_and_port(url: str, key: str) -> None:
    assert host_key(url) == key


class Gauge:
    """Counts work running at once, overall and per host, at its highest."""

    def __init__(self, pause: float = 0.002) -> None:
        self.pause = pause
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total = 0
        self.peak_total = 0

    def work(self, item: tuple[str, int]) -> tuple[str, int]:
        host = item[0]
        with self.lock:
            self.now[host] = self.now.get(host, 0) + 1
            self.total += 1
            self.peak[host] = max(self.peak.get(host, 0), self.now[host])
            self.peak_total = max(self.peak_total, self.total)
        time.sleep(self.pause)  # long enough for the others to overlap
        with self.lock:
            self.now[host] -= 1
            self.total -= 1
        return item


@pytest.mark.parametrize("per_host", [1, 2])
def test_polite_map_bounds_each_host_and_the_total(per_host: int) -> None:
    items = [(host, n) for n in range(12) for host in ("a", "b", "c", "d", "e")]
    gauge = Gauge()
    results = list(
        polite_map(items, gauge.work, key=lambda item: item[0], concurrency=4, per_host=per_host)
    )
    assert sorted(results) == sorted(items)
    assert max(gauge.peak.values()) <= per_host
    assert gauge.peak_total <= 4


def test_polite_map_one_host_never_starves_the_others() -> None:
    # Twenty feeds on one site, one on another: the lone feed is not queued behind them.
    items = [("big", n) for n in range(20)] + [("small", 0)]
    order = [
        item[0]
        for item in polite_map(
            items, lambda item: item, key=lambda i: i[0], concurrency=2, per_host=1
        )
    ]
    assert order.index("small") < 3


def test_polite_map_stops_starting_work_when_told() -> None:
    stop = threading.Event()
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        stop.set()
        return item

    list(polite_map(range(50), work, key=lambda i: i, concurrency=1, per_host=1, stop=stop))
    assert started == [0]


def test_polite_map_survives_a_failing_item(caplog: pytest.LogCaptureFixture) -> None:
    def work(item: int) -> int:
        if item == 3:
            raise RuntimeError("bug")
        return item

    results = list(polite_map(range(6), work, key=lambda i: i % 2, concurrency=2, per_host=1))
    assert sorted(results) == [0, 1, 2, 4, 5]
    assert "fetch worker failed" in caplog.text


def test_polite_map_runs_at_most_ahead_of_what_was_taken() -> None:
    # The refresh takes fetched feeds as fast as it can store them: with 2,000 feeds,
    # fetching and parsing them all at the start held the storing process's GIL.
    started: list[int] = []
    taken: list[int] = []

    def fetch(item: int) -> int:
        started.append(item)
        return item

    for result in polite_map(
        range(40), fetch, key=lambda item: item % 5, concurrency=4, per_host=1, ahead=6
    ):
        taken.append(result)
        assert len(started) <= len(taken) + 6
        time.sleep(0.002)  # a caller slower than the fetches
    assert sorted(taken) == list(range(40))


def test_polite_map_without_ahead_runs_ahead_of_a_slow_caller() -> None:
    started: list[int] = []

    def fetch(item: int) -> int:
        started.append(item)
        return item

    taken: list[int] = []
    for result in polite_map(range(12), fetch, key=lambda i: i, concurrency=2, per_host=1):
        if not taken:
            time.sleep(0.2)  # every fetch is done before the caller takes its first result
            assert len(started) == 12
        taken.append(result)
    assert sorted(taken) == list(range(12))


def test_polite_map_ahead_ends_with_failing_items_and_a_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def work(item: int) -> int:
        if item % 3 == 0:
            raise RuntimeError("bug")
        return item

    results = list(
        polite_map(range(12), work, key=lambda i: i % 2, concurrency=2, per_host=1, ahead=1)
    )
    assert sorted(results) == [1, 2, 4, 5, 7, 8, 10, 11]
    stop = threading.Event()
    taken = []
    for result in polite_map(
        range(30), lambda i: i, key=lambda i: i, concurrency=3, per_host=1, stop=stop, ahead=2
    ):
        taken.append(result)
        stop.set()
    assert 1 <= len(taken) <= 3  # what was in flight or done when it stopped


def test_polite_map_with_nothing_to_do() -> None:
    assert list(polite_map([], lambda item: item, key=str, concurrency=3, per_host=1)) == []


@pytest.mark.parametrize("limit", [1, 2])
def test_host_slots_bound_each_site_over_every_thread_sharing_them(limit: int) -> None:
    # Twelve threads (say, the page pools of several feeds) fetch thirty pages on three
    # sites: never more than ``limit`` at once on a site, the sites side by side.
    slots = HostSlots(limit)
    gauge = Gauge(pause=0.02)
    urls = [f"https://{site}.test/page-{n}" for n in range(10) for site in ("a", "b", "c")]

    def fetch(url: str) -> str:
        with slots.hold(url):
            gauge.work((host_key(url), 0))
        return url

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert sorted(pool.map(fetch, urls)) == sorted(urls)
    assert gauge.peak == dict.fromkeys(
        ["https://a.test:", "https://b.test:", "https://c.test:"], limit
    )
    assert gauge.peak_total > limit
    assert slots.waiting(urls[0]) == 0


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, "gave up waiting"
        time.sleep(0.005)


def test_host_slots_a_raised_limit_lets_waiting_threads_in_at_once() -> None:
    slots = HostSlots(1)
    got_in = threading.Event()

    def second_page() -> None:
        with slots.hold("https://a.test/2"):
            got_in.set()

    with slots.hold("https://a.test/1"):
        waiter = threading.Thread(target=second_page)
        waiter.start()
        wait_until(lambda: slots.waiting("https://a.test/") == 1)
        assert not got_in.is_set()
        slots.limit = 2  # a live edit of page_per_host_limit
        assert got_in.wait(2)
    waiter.join()


def test_host_slots_waiting_threads_give_up_when_stopping() -> None:
    slots = HostSlots(1)
    stop = threading.Event()
    outcome: list[str] = []

    def second_page() -> None:
        try:
            with slots.hold("https://a.test/2", stop=stop):
                outcome.append("fetched")
        except Stopped as exc:
            outcome.append(str(exc))

    with slots.hold("https://a.test/1", stop=stop):
        waiter = threading.Thread(target=second_page)
        waiter.start()
        wait_until(lambda: slots.waiting("https://a.test/") == 1)
        stop.set()
        waiter.join(timeout=2)
        assert not waiter.is_alive()
    assert outcome == ["stopping: gave up waiting for a slot on https://a.test:"]
    # A free slot is still handed out: only waiting gives up.
    with slots.hold("https://a.test/3", stop=stop):
        pass
