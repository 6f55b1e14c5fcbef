"""A listed feed cannot lead the fetcher to a private address (issue 19, item 8).

The admin's feed URL is fetched as given; any other host the feed sends us to (a
redirect, a recorded permanent move) must be public, unless the listed host is
private itself (the admin chose an intranet) or ``allow_private_addresses`` is set.
A refusal never connects, so the error /healthz shows reads the same whether a
port inside is open or closed.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from aggregator.config import Settings, load_config
from aggregator.errors import BlockedURL
from aggregator.fetch import fetch_feed, make_client
from aggregator.pipeline import PipelineContext, refresh_feeds
from aggregator.storage import Storage
from tests.loopback import Route, Site

SETTINGS = Settings.model_validate({"timeout": "5s"})
RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
    b"<title>Barracks reopen</title><guid>b-1</guid><description>Open.</description>"
    b"</item></channel></rss>"
)
XML = {"Content-Type": "application/rss+xml"}
ZONE = {
    "feeds.example": ["93.184.216.34"],
    "cdn.example": ["93.184.216.35"],
    "internal.example": ["10.1.2.3"],
    "sneaky.example": ["93.184.216.36", "127.0.0.1"],
    "intranet.example": ["10.0.0.9"],
    "localhost": ["127.0.0.1"],
}


def resolve(host: str, port: int) -> list[str]:
    """No DNS in tests: what the zones would say."""
    if host not in ZONE:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ZONE[host]


class Publisher:
    """A MockTransport handler: /feed redirects to ``target``, everything else is a feed.
    Records the (host, path) of each request that would have gone on the wire."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.headers["host"], request.url.path))
        if request.url.path == "/feed":
            return httpx.Response(302, headers={"Location": self.target})
        return httpx.Response(200, content=RSS)


def fetch(
    publisher: Callable[[httpx.Request], httpx.Response],
    url: str,
    *,
    settings: Settings = SETTINGS,
    listed: str | None = None,
) -> str:
    transport = httpx.MockTransport(publisher)
    with make_client(settings, guard=False, transport=transport, resolve=resolve) as client:
        result = fetch_feed(
            client, url, etag=None, last_modified=None, max_bytes=100_000, listed_url=listed
        )
    return result.final_url


INTERNAL_TARGETS = [
    "http://[::1]:8080/internal-feed.xml",
    "http://127.0.0.1:6379/",
    "http://2130706433/",
    "http://10.0.0.5/feed",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://internal.example/feed",
    "http://sneaky.example/feed",  # one private address among public ones
    "http://localhost:9000/feed",
]


@pytest.mark.parametrize("target", INTERNAL_TARGETS)
def test_a_public_feed_cannot_redirect_to_a_private_address(target: str) -> None:
    publisher = Publisher(target)
    with pytest.raises(BlockedURL, match="refused to follow the feed to .*: not a public address"):
        fetch(publisher, "http://feeds.example/feed")
    assert publisher.seen == [("feeds.example", "/feed")]  # nothing sent inside


def test_the_refusal_is_the_same_whatever_the_port() -> None:
    """No port probe: the message names the host only, and nothing is connected."""
    messages = set()
    for port in (22, 6379, 8080, 65000):
        with pytest.raises(BlockedURL) as refused:
            fetch(Publisher(f"http://127.0.0.1:{port}/x"), "http://feeds.example/feed")
        messages.add(str(refused.value))
    assert len(messages) == 1
    assert "6379" not in messages.pop()


def test_a_public_feed_may_move_to_another_public_host() -> None:
    publisher = Publisher("https://cdn.example/feed.xml")
    assert fetch(publisher, "http://feeds.example/feed") == "https://cdn.example/feed.xml"
    assert publisher.seen == [("feeds.example", "/feed"), ("cdn.example", "/feed.xml")]


def test_a_redirect_on_the_listed_host_is_followed() -> None:
    publisher = Publisher("/other.xml")
    assert fetch(publisher, "http://feeds.example/feed") == "http://feeds.example/other.xml"


@pytest.mark.parametrize("listed", ["http://intranet.example/feed", "http://10.0.0.7/feed"])
def test_a_feed_on_a_private_host_may_redirect_inside(listed: str) -> None:
    """The admin listed an intranet feed: its redirects inside are the admin's too."""
    publisher = Publisher("http://10.0.0.8/feed.xml")
    assert fetch(publisher, listed) == "http://10.0.0.8/feed.xml"


def test_allow_private_addresses_lets_any_redirect_through() -> None:
    settings = Settings.model_validate({"timeout": "5s", "allow_private_addresses": True})
    publisher = Publisher("http://[::1]:8080/internal-feed.xml")
    assert fetch(publisher, "http://feeds.example/feed", settings=settings).startswith(
        "http://[::1]:8080/"
    )


def test_a_recorded_move_to_a_private_address_is_refused() -> None:
    """A permanent move recorded before this guard existed is not trusted either."""
    publisher = Publisher("unused")
    with pytest.raises(BlockedURL):
        fetch(publisher, "http://10.0.0.5/feed.xml", listed="http://feeds.example/feed")
    assert publisher.seen == []


class ToLoopback(httpx.BaseTransport):
    """A real HTTP transport that sends ``feeds.example`` to a loopback site, as if
    that public name pointed at it."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "feeds.example":
            request.url = request.url.copy_with(host="127.0.0.1", port=self._port)
        return self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


def _refresh_error(tmp_path: Path, public: Site, internal_port: int) -> str:
    """Refresh the listed feed (a public name served on loopback) whose /feed
    redirects to ``internal_port`` inside; the error recorded on the feed's row."""
    public.routes["/feed"] = Route(
        302, headers={"Location": f"http://127.0.0.1:{internal_port}/internal-feed.xml"}
    )
    (tmp_path / "feeds.yaml").write_text(
        "settings:\n  database: db.sqlite\n  workers: 0\n"
        "feeds:\n  - name: Outlet\n    url: http://feeds.example/feed\n"
    )
    config = load_config(tmp_path / "feeds.yaml")
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0)
    ctx.feed_client.close()
    ctx.feed_client = make_client(
        config.settings, guard=False, transport=ToLoopback(public.port), resolve=resolve
    )
    try:
        [outcome] = refresh_feeds(ctx, config.enabled_feeds)
        [row] = storage.feed_health()
    finally:
        ctx.close()
        storage.close()
    assert outcome.status == "failed"
    return str(row["last_error"])


def test_end_to_end_no_internal_content_and_no_port_oracle(tmp_path: Path) -> None:
    internal_rss = RSS.replace(b"<title>T</title>", b"<title>Internal only</title>")
    with (
        Site() as public,
        Site({"/internal-feed.xml": Route(body=internal_rss, headers=XML)}) as internal,
    ):
        (tmp_path / "open").mkdir()
        (tmp_path / "closed").mkdir()
        open_error = _refresh_error(tmp_path / "open", public, internal.port)
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        closed_error = _refresh_error(tmp_path / "closed", public, closed_port)
    assert internal.hits == []  # the internal feed was never asked for
    assert public.hits == ["/feed", "/feed"]
    assert open_error == closed_error
    assert "refused to follow the feed to 127.0.0.1" in open_error


def test_end_to_end_an_intranet_feed_still_redirects_inside(tmp_path: Path) -> None:
    """Listed on a loopback address, so the admin chose an intranet: a redirect to
    another private host is followed as before (default settings, real sockets)."""
    with Site({"/feed.xml": Route(body=RSS, headers=XML)}) as inside, Site() as listed:
        listed.routes["/feed"] = Route(
            302, headers={"Location": f"http://localhost:{inside.port}/feed.xml"}
        )
        (tmp_path / "feeds.yaml").write_text(
            "settings:\n  database: db.sqlite\n  workers: 0\n"
            f"feeds:\n  - name: Intranet\n    url: {listed.base_url}/feed\n"
        )
        config = load_config(tmp_path / "feeds.yaml")
        storage = Storage.open(config.database_path)
        ctx = PipelineContext.create(config, storage, workers=0)
        try:
            [outcome] = refresh_feeds(ctx, config.enabled_feeds)
        finally:
            ctx.close()
            storage.close()
    assert outcome.status == "ok", outcome.error
    assert inside.hits == ["/feed.xml"]
