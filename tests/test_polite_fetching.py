"""Issue 3: a hostile publisher on 127.0.0.1, one route per misbehaviour, refreshed
together with well-behaved feeds in every format. For each route: the right outcome on
the feed's row, the good feeds unaffected, the scheduler job still running, and nothing
half-written. The clock is fake and jitter is off, so next-fetch times are exact.
The same server counts the slow article pages it serves at once, so the tests can show
that several feeds' pages on one site never pass ``page_per_host_limit`` together.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.config import Config, load_config
from aggregator.errors import HTTPStatusError
from aggregator.models import FetchResult, ParsedFeed
from aggregator.parse import pool as parse_pool
from aggregator.pipeline import (
    PipelineContext,
    RefreshOutcome,
    refresh_due_feeds,
    refresh_feeds,
)
from aggregator.pipeline import articles as ingest
from aggregator.pipeline.next_check import FIRST_RETRY
from aggregator.scheduler import run_refresh_job
from aggregator.serve.server import create_app
from aggregator.storage import Storage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)
MAX_FEED_BYTES = 200_000

# --------------------------------------------------------------------------- invented feeds


def rss_item(slug: str, title: str, text: str = "", pages: str = "/pages") -> str:
    body = text or f"{title}. The ministry confirmed the figures on Tuesday afternoon."
    return (
        f"<item><title>{title}</title><link>{{BASE}}{pages}/{slug}.html</link>"
        f"<guid>{slug}</guid><description>{body}</description></item>"
    )


def rss(name: str, *items: str, version: str = "2.0", ttl: int | None = None) -> str:
    head = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="{version}"><channel>'
        f"<title>{name}</title><link>{{BASE}}/</link>{head}{''.join(items)}</channel></rss>"
    )


RDF = (
    '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    ' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="{BASE}/"><title>Old Wire</title>'
    "<link>{BASE}/</link></channel>"
    '<item rdf:about="{BASE}/pages/rdf-1.html"><title>Depot fire contained at Norrmark</title>'
    "<link>{BASE}/pages/rdf-1.html</link><description>The depot fire was contained by"
    " noon, the garrison said.</description></item></rdf:RDF>"
)
ATOM_03 = (
    '<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#">'
    "<title>Legacy Atom</title><entry><title>Cadet school opens second campus</title>"
    '<link rel="alternate" type="text/html" href="{BASE}/pages/atom03-1.html"/>'
    "<id>tag:legacy.test,2026:1</id><issued>2026-11-20T08:00:00Z</issued>"
    "<summary>The second campus takes its first cadets in spring.</summary></entry></feed>"
)
ATOM_10 = (
    '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Modern Atom</title>'
    "<id>urn:modern</id><updated>2026-11-21T08:00:00Z</updated><entry>"
    "<title>Coastal radar chain handed over</title>"
    '<link href="{BASE}/pages/atom10-1.html"/><id>urn:modern:1</id>'
    "<updated>2026-11-21T08:00:00Z</updated>"
    "<summary>The radar chain now reports to the joint command.</summary></entry></feed>"
)
JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Json Outlet",
        "items": [
            {
                "id": "json-1",
                "url": "{BASE}/pages/json-1.html",
                "title": "Reserve brigade mobilises for exercise",
                "content_text": "The reserve brigade mobilises for a two-week exercise.",
            }
        ],
    }
)
NO_PAGE_FEED = rss(
    "No Page",
    "<item><title>Depot guard doubled</title><link>{BASE}/nowhere/guard.html</link>"
    "<guid>guard-1</guid><description>The guard at the depot is doubled to four"
    " sections.</description></item>",
)
CP1252_FEED = rss("Mauvais Charset", rss_item("cp-1", "Frégate livrée à Brest")).encode("cp1252")
BOM_FEED = b"\xef\xbb\xbf" + rss("Bom Outlet", rss_item("bom-1", "Tank plant adds shift")).encode()
PAGE = (
    "<html><head><title>{slug}</title></head><body><nav>Home | News</nav><article>"
    "<h1>{slug}</h1>"
    + "".join(
        f"<p>Officials described part {n} of the programme at the briefing, giving figures"
        f" for delivery batch {n} and for the budget of year {2026 + n}.</p>"
        for n in range(8)
    )
    + "</article><footer>Copyright</footer></body></html>"
)


@functools.cache
def gzip_bomb(size: int = 20_000_000) -> bytes:
    """``size`` zero bytes, gzipped to about 20 KB."""
    return gzip.compress(bytes(size), compresslevel=9)


# --------------------------------------------------------------------------- the server


class HostileHandler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        self.server.count(path)
        route = ROUTES.get(path)
        if route is None and path.startswith("/pages/"):
            route = page_route
        if route is None and path.startswith("/slow-pages/"):
            route = slow_page_route
        if route is None:
            self.answer(404, b"no such route")
            return
        try:
            route(self)
        except OSError:  # the client hung up on a hostile route: that is the point
            pass

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Type", "application/rss+xml")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def feed(self, text: str | bytes, content_type: str = "application/rss+xml") -> None:
        """A body with an ETag; 304 when the client already has it."""
        body = self.server.body(self.path, text)
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if self.headers.get("If-None-Match") == etag:
            self.answer(304, ETag=etag)
            return
        self.answer(200, body, ETag=etag, Content_Type=content_type)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.hits: dict[str, int] = {}
        self.overrides: dict[str, bytes] = {}
        self.pages_now = 0  # slow pages being served at this moment
        self.pages_peak = 0  # ... and at most
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    @contextmanager
    def serving_page(self) -> Iterator[None]:
        with self._lock:
            self.pages_now += 1
            self.pages_peak = max(self.pages_peak, self.pages_now)
        try:
            yield
        finally:
            with self._lock:
                self.pages_now -= 1

    def body(self, path: str, text: str | bytes) -> bytes:
        raw = self.overrides.get(path.split("?", 1)[0], text)
        data = raw.encode() if isinstance(raw, str) else raw
        return data.replace(b"{BASE}", self.base_url.encode())


Route = Callable[[HostileHandler], None]


def page_route(h: HostileHandler) -> None:
    slug = h.path.rsplit("/", 1)[1].removesuffix(".html")
    h.answer(200, PAGE.format(slug=slug).encode(), Content_Type="text/html; charset=utf-8")


def slow_page_route(h: HostileHandler) -> None:
    """An article page that takes a moment, so requests for others overlap with it."""
    with h.server.serving_page():
        time.sleep(0.1)
        page_route(h)


def trickle_route(h: HostileHandler) -> None:
    """The status line, then the headers one byte every 0.1 s: every read succeeds,
    so only a total deadline stops it."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for byte in b"X-Slow: " + b"z" * 200:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(0.1)


def endless_route(h: HostileHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.end_headers()
    chunk = b"<item>" + b"x" * 16_378 + b"</item>"
    for _ in range(10_000):  # 160 MB at most, if nobody hangs up
        h.wfile.write(chunk)


def reset_route(h: HostileHandler) -> None:
    """Close with a TCP reset before answering."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def unavailable_route(h: HostileHandler) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=3), usegmt=True)
    h.answer(503, b"maintenance", Retry_After=later)


def good(text: str | bytes, content_type: str = "application/rss+xml") -> Route:
    return lambda h: h.feed(text, content_type)


ROUTES: dict[str, Route] = {
    # Well-behaved feeds, in every format, some served with the wrong content type.
    "/good/rss2.xml": good(
        rss("Steady Outlet", rss_item("steady-1", "Patrol boat order confirmed"), ttl=60)
    ),
    "/good/rss091.xml": good(
        rss("Old Outlet", rss_item("old-1", "Signals unit moves north"), version="0.91"),
        "text/xml",
    ),
    "/good/rdf.xml": good(RDF, "application/rdf+xml"),
    "/good/atom03.xml": good(ATOM_03, "application/atom+xml"),
    "/good/atom10.xml": good(ATOM_10, "application/octet-stream"),
    "/good/json.json": good(JSON_FEED, "application/feed+json"),
    "/good/as-html.xml": good(BOM_FEED, "text/html"),
    "/good/cp1252.xml": good(CP1252_FEED, "text/xml; charset=utf-8"),
    "/good/moved-target.xml": good(rss("Moved Outlet", rss_item("moved-1", "Depot reopens"))),
    "/good/no-page.xml": good(NO_PAGE_FEED),
    "/good/relative-target.xml": good(
        rss("Relative Outlet", rss_item("relative-1", "Range closed for firing"))
    ),
    # Misbehaviour, one route each.
    "/busy.xml": lambda h: h.answer(429, b"slow down", Retry_After="7200"),
    "/unavailable.xml": unavailable_route,
    "/error.xml": lambda h: h.answer(500, b"stack trace"),
    "/missing.xml": lambda h: h.answer(404, b"not here"),
    "/gone.xml": lambda h: h.answer(410, b"gone for good"),
    "/trickle.xml": trickle_route,
    "/endless.xml": endless_route,
    "/bomb.xml": lambda h: h.answer(200, gzip_bomb(), Content_Encoding="gzip"),
    "/loop.xml": lambda h: h.answer(302, Location="/loop.xml"),
    "/moved.xml": lambda h: h.answer(301, Location="/good/moved-target.xml"),
    "/relative.xml": lambda h: h.answer(302, Location="good/relative-target.xml"),
    "/html.xml": lambda h: h.answer(
        200, b"<html><body><h1>Our new website!</h1></body></html>", Content_Type="text/html"
    ),
    "/invalid.xml": lambda h: h.answer(200, b'<?xml version="1.0"?><rss><channel><title>half'),
    "/reset.xml": reset_route,
}

GOOD = {
    "Steady": "/good/rss2.xml",
    "Old": "/good/rss091.xml",
    "Rdf": "/good/rdf.xml",
    "Atom03": "/good/atom03.xml",
    "Atom10": "/good/atom10.xml",
    "Json": "/good/json.json",
    "AsHtml": "/good/as-html.xml",
    "Charset": "/good/cp1252.xml",
    "Moved": "/moved.xml",
    "Relative": "/relative.xml",
}
# Three outlets on one site, four articles each, every page slow to answer.
PACED = {name: f"/paced/{name.lower()}.xml" for name in ("Alpha", "Bravo", "Charlie")}
for _name, _path in PACED.items():
    ROUTES[_path] = good(
        rss(
            f"{_name} Outlet",
            *(
                rss_item(f"{_name.lower()}-{n}", f"{_name} report {n}", pages="/slow-pages")
                for n in range(4)
            ),
        )
    )
# name -> (path, words the recorded error must contain, HTTP status recorded)
HOSTILE: dict[str, tuple[str, str, int | None]] = {
    "Busy": ("/busy.xml", "HTTP 429", 429),
    "Unavailable": ("/unavailable.xml", "HTTP 503", 503),
    "Error": ("/error.xml", "HTTP 500", 500),
    "Missing": ("/missing.xml", "HTTP 404", 404),
    "Gone": ("/gone.xml", "HTTP 410", 410),
    "Trickle": ("/trickle.xml", "deadline", None),
    "Endless": ("/endless.xml", f"larger than {MAX_FEED_BYTES}", None),
    "Bomb": ("/bomb.xml", f"larger than {MAX_FEED_BYTES}", None),
    "Loop": ("/loop.xml", "too many redirects", None),
    "Html": ("/html.xml", "not a feed", None),
    "Invalid": ("/invalid.xml", "not a feed", None),
    "Reset": ("/reset.xml", "connection lost", None),
}


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(scope="module")
def module_server() -> Iterator[HostileServer]:
    """One server for the module (its hits only ever grow; tests compare differences)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (*PROXY_VARIABLES, "all_proxy"):
            patch.delenv(name, raising=False)
        hostile = HostileServer()
        thread = threading.Thread(target=hostile.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield hostile
        finally:
            hostile.shutdown()
            hostile.server_close()
            thread.join()


@pytest.fixture
def server(module_server: HostileServer) -> Iterator[HostileServer]:
    """The module's server, with this test's body overrides removed afterwards."""
    module_server.pages_peak = 0
    yield module_server
    module_server.overrides.clear()


def write_config(
    server: HostileServer, tmp_path: Path, feeds: dict[str, str], **settings: object
) -> Config:
    """feeds.yaml for ``feeds`` (name -> path) and any more ``settings``; each config
    gets its own database."""
    lines = [
        "settings:",
        f"  database: {json.dumps(str(tmp_path / 'hostile.db'))}",
        "  refresh_interval: 5m",
        "  timeout: 1s",
        f"  max_feed_bytes: {MAX_FEED_BYTES}",
        "  allow_private_addresses: true",
        "  per_host_limit: 4",
        "  feed_concurrency: 8",
        *(f"  {key}: {json.dumps(value)}" for key, value in settings.items()),
        "feeds:" if feeds else "feeds: []",
    ]
    for name, path in feeds.items():
        lines += [f"  - name: {name}", f"    url: {json.dumps(server.base_url + path)}"]
    (tmp_path / "feeds.yaml").write_text("\n".join(lines) + "\n")
    return load_config(tmp_path / "feeds.yaml")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def open_ctx(config: Config) -> PipelineContext:
    # A sub-second timeout (feeds.yaml's grain is 1 s) keeps the trickle route quick.
    settings = config.settings.model_copy(update={"timeout": timedelta(milliseconds=500)})
    config = config.model_copy(update={"settings": settings})
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0)
    ctx.clock = Clock()
    ctx.rand = lambda: 0.0  # no jitter: exact times
    return ctx


def close_ctx(ctx: PipelineContext) -> None:
    ctx.close()
    ctx.storage.close()


@pytest.fixture
def make_ctx() -> Iterator[Callable[[Config], PipelineContext]]:
    made: list[PipelineContext] = []

    def make(config: Config) -> PipelineContext:
        made.append(open_ctx(config))
        return made[-1]

    yield make
    for ctx in made:
        close_ctx(ctx)


def rows_by_name(storage: Storage) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in storage.feed_health()}


def articles_of(storage: Storage, name: str) -> list[dict[str, Any]]:
    return list(
        storage.db.query(
            "SELECT a.* FROM articles a JOIN feeds f ON f.id = a.feed_id WHERE f.name = ?",
            [name],
        )
    )


# --------------------------------------------------------------------------- every route


ALL_ROUTES = {**GOOD, **{name: path for name, (path, _, _) in HOSTILE.items()}}


@pytest.fixture(scope="module")
def first_refresh(
    module_server: HostileServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PipelineContext, list[RefreshOutcome]]]:
    """Every route refreshed once, together. Read-only for the tests that use it."""
    config = write_config(module_server, tmp_path_factory.mktemp("all"), ALL_ROUTES)
    ctx = open_ctx(config)
    try:
        yield ctx, refresh_feeds(ctx, ctx.config.enabled_feeds)
    finally:
        close_ctx(ctx)


def test_every_good_feed_is_stored_whatever_its_neighbours_do(first_refresh) -> None:
    ctx, outcomes = first_refresh
    by_name = {outcome.name: outcome for outcome in outcomes}
    assert {name: by_name[name].status for name in GOOD} == dict.fromkeys(GOOD, "ok")
    rows = rows_by_name(ctx.storage)
    for name in GOOD:
        assert rows[name]["last_error"] is None and rows[name]["last_status"] == 200, name
        assert len(articles_of(ctx.storage, name)) == 1, name


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_misbehaviour_is_recorded_on_its_feed_and_nothing_half_written(
    first_refresh, name: str
) -> None:
    ctx, outcomes = first_refresh
    _, words, status = HOSTILE[name]
    outcome = next(outcome for outcome in outcomes if outcome.name == name)
    row = rows_by_name(ctx.storage)[name]
    assert outcome.status == "failed"
    assert words in outcome.error and words in row["last_error"]
    assert row["last_status"] == status
    assert row["consecutive_failures"] == 1
    assert row["last_success_at"] is None
    assert articles_of(ctx.storage, name) == []


@pytest.mark.parametrize(
    ("name", "wait"),
    [
        ("Busy", timedelta(hours=2)),  # Retry-After: 7200 beats the 10 min backoff
        ("Unavailable", timedelta(hours=3)),  # Retry-After as an HTTP date
        # Never fetched successfully: a minute, not the interval doubled (issue 17).
        ("Error", FIRST_RETRY),
        ("Missing", FIRST_RETRY),
        ("Steady", timedelta(minutes=60)),  # <ttl>60</ttl> beats the 5 min interval
        ("Old", INTERVAL),
    ],
)
def test_next_fetch_honours_the_server_and_backs_off(first_refresh, name: str, wait) -> None:
    ctx, _ = first_refresh
    next_check = datetime.fromisoformat(rows_by_name(ctx.storage)[name]["next_check_at"])
    assert abs(next_check - (NOW + wait)) <= timedelta(seconds=2)


def test_a_gone_feed_is_stopped_until_the_admin_resets_it(
    server: HostileServer, tmp_path: Path, make_ctx
) -> None:
    ctx = make_ctx(write_config(server, tmp_path, {"Gone": "/gone.xml", "Old": GOOD["Old"]}))
    hits = server.hits.get("/gone.xml", 0)
    refresh_feeds(ctx, ctx.config.enabled_feeds)
    row = rows_by_name(ctx.storage)["Gone"]
    assert row["next_check_at"] is None and "410" in row["disabled_reason"]
    ctx.clock.now = NOW + timedelta(days=3)
    again = refresh_feeds(ctx, ctx.config.enabled_feeds)
    assert server.hits["/gone.xml"] == hits + 1  # not asked again, even by a full refresh
    assert next(o for o in again if o.name == "Gone").status == "failed"
    assert "Gone" not in {o.name for o in refresh_due_feeds(ctx)}

    reset = CliRunner().invoke(cli, ["--config", str(ctx.config.path), "feeds", "--reset", "gone"])
    assert reset.exit_code == 0 and f"reset: {server.base_url}/gone.xml" in reset.output
    ctx.clock.now = datetime.now(UTC)  # the CLI used the real clock
    assert "Gone" in {o.name for o in refresh_due_feeds(ctx)}
    assert server.hits["/gone.xml"] == hits + 2
    unknown = CliRunner().invoke(cli, ["--config", str(ctx.config.path), "feeds", "--reset", "x"])
    assert unknown.exit_code == 1 and "no feed" in unknown.output


def test_a_permanent_redirect_is_recorded_and_followed_from_then_on(
    server: HostileServer, tmp_path: Path, make_ctx
) -> None:
    feeds = {"Moved": GOOD["Moved"], "Relative": GOOD["Relative"]}
    ctx = make_ctx(write_config(server, tmp_path, feeds))
    outcomes = refresh_feeds(ctx, ctx.config.enabled_feeds)
    target = server.base_url + "/good/moved-target.xml"
    assert next(o for o in outcomes if o.name == "Moved").moved_to == target
    assert rows_by_name(ctx.storage)["Moved"]["permanent_url"] == target
    assert rows_by_name(ctx.storage)["Relative"]["permanent_url"] is None  # 302: temporary
    moved, direct = server.hits["/moved.xml"], server.hits["/good/moved-target.xml"]
    refresh_feeds(ctx, ctx.config.enabled_feeds)
    assert server.hits["/moved.xml"] == moved
    assert server.hits["/good/moved-target.xml"] == direct + 1


def test_second_refresh_is_all_304_and_counts_the_bytes_saved(
    server: HostileServer, tmp_path: Path, make_ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(write_config(server, tmp_path, GOOD))
    refresh_feeds(ctx, ctx.config.enabled_feeds)
    pages = {path: n for path, n in server.hits.items() if path.startswith("/pages/")}
    parsed: list[str] = []
    real_parse = parse_pool.parse_feed  # type: ignore[attr-defined]

    def spy(result: FetchResult, **kw: Any) -> ParsedFeed:
        parsed.append(result.url)
        return real_parse(result, **kw)

    monkeypatch.setattr(parse_pool, "parse_feed", spy)
    before = ctx.storage.counts()
    good_sources = [s for s in ctx.config.enabled_feeds if s.name in GOOD]
    outcomes = refresh_feeds(ctx, good_sources)
    assert [o.status for o in outcomes] == ["not-modified"] * len(GOOD)
    assert parsed == []  # a 304 costs no parse
    assert ctx.storage.counts() == before
    rows = rows_by_name(ctx.storage)
    assert all(rows[name]["bytes_saved"] > 0 for name in GOOD)
    assert {path: n for path, n in server.hits.items() if path.startswith("/pages/")} == pages


def test_the_scheduler_job_survives_every_route_and_keeps_going(
    server: HostileServer, tmp_path: Path, make_ctx
) -> None:
    # The trickle is left out only to keep the suite fast: the module refresh has it.
    feeds = {name: path for name, path in ALL_ROUTES.items() if name != "Trickle"}
    ctx = make_ctx(write_config(server, tmp_path, feeds))
    ctx.storage.sync_feeds(ctx.config.feeds, NOW)  # as the daemon does on start
    run_refresh_job(ctx)  # never raises; logs instead
    ctx.clock.now = NOW + timedelta(minutes=11)
    run_refresh_job(ctx)
    rows = rows_by_name(ctx.storage)
    assert rows["Error"]["consecutive_failures"] == 2  # due again after 10 min: retried
    assert rows["Busy"]["consecutive_failures"] == 1  # Retry-After 2 h: left alone
    assert rows["Steady"]["last_error"] is None


# --------------------------------------------------------------------------- bodies


def test_same_bytes_under_a_new_etag_are_not_parsed(
    server: HostileServer, tmp_path: Path, make_ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(write_config(server, tmp_path, {"Steady": "/good/rss2.xml"}))
    refresh_feeds(ctx, ctx.config.enabled_feeds)
    parsed: list[str] = []
    real_parse = parse_pool.parse_feed  # type: ignore[attr-defined]

    def spy(result: FetchResult, **kw: Any) -> ParsedFeed:
        parsed.append(result.url)
        return real_parse(result, **kw)

    monkeypatch.setattr(parse_pool, "parse_feed", spy)
    monkeypatch.setattr(ctx.storage, "feed_state", _forget_etag(ctx.storage.feed_state))
    [outcome] = refresh_feeds(ctx, ctx.config.enabled_feeds)
    assert outcome.status == "not-modified" and parsed == []
    assert rows_by_name(ctx.storage)["Steady"]["last_status"] == 200


def _forget_etag(feed_state: Callable[[str], Any]) -> Callable[[str], Any]:
    """Pretend the ETag was lost, so the server sends the whole body again."""
    import dataclasses

    return lambda url: dataclasses.replace(feed_state(url), etag=None, last_modified=None)


def test_an_edited_entry_is_updated_in_place_and_its_story_moves(
    server: HostileServer, tmp_path: Path, make_ctx
) -> None:
    feeds = {"Steady": "/good/rss2.xml", "NoPage": "/good/no-page.xml"}
    ctx = make_ctx(write_config(server, tmp_path, feeds))
    refresh_feeds(ctx, ctx.config.enabled_feeds)
    [before] = articles_of(ctx.storage, "Steady")
    [fallback] = articles_of(ctx.storage, "NoPage")
    assert (before["extraction_status"], fallback["extraction_status"]) == ("extracted", "fallback")
    story_before = ctx.storage.db.execute(
        "SELECT updated_at FROM stories WHERE id = ?", [before["story_id"]]
    ).fetchone()[0]
    edited = rss_item("steady-1", "Patrol boat order confirmed: six hulls, not four")
    server.overrides["/good/rss2.xml"] = rss("Steady Outlet", edited, ttl=60).encode()
    server.overrides["/good/no-page.xml"] = NO_PAGE_FEED.replace("four", "six").encode()
    pages_before = server.hits["/pages/steady-1.html"]
    ctx.clock.now = NOW + timedelta(hours=2)

    outcome, edited_fallback = refresh_feeds(ctx, ctx.config.enabled_feeds)

    [after] = articles_of(ctx.storage, "Steady")
    assert outcome.status == "ok" and outcome.new_articles == 0 and outcome.updated_articles == 1
    assert after["id"] == before["id"] and after["title"].endswith("six hulls, not four")
    print(before["extraction_status"], before["extraction_note"], before["text"][:300])
    assert after["text"] == before["text"]  # extracted from the page: kept, not refetched
    assert server.hits["/pages/steady-1.html"] == pages_before
    # A body taken from the feed follows the feed's new text.
    [fallback_after] = articles_of(ctx.storage, "NoPage")
    assert edited_fallback.updated_articles == 1
    assert "six" in fallback_after["text"] and "four" in fallback["text"]
    story_after = ctx.storage.db.execute(
        "SELECT updated_at FROM stories WHERE id = ?", [after["story_id"]]
    ).fetchone()[0]
    assert story_after > story_before and story_after.startswith("2026-11-25T14:00")

    server.overrides["/good/rss2.xml"] += b"<!-- same items, new bytes -->"
    unchanged, _ = refresh_feeds(ctx, ctx.config.enabled_feeds)
    assert unchanged.status == "ok" and unchanged.updated_articles == 0


def test_a_crash_while_storing_one_feed_rolls_it_back_and_spares_the_rest(
    server: HostileServer, tmp_path: Path, make_ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = {"Steady": GOOD["Steady"], "Json": GOOD["Json"]}
    ctx = make_ctx(write_config(server, tmp_path, feeds))
    real_store = ingest.store_article

    def store(ctx_: PipelineContext, state: Any, page: Any, source: Any) -> None:
        real_store(ctx_, state, page, source)
        if source.name == "Json":
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest, "store_article", store)
    outcomes = {o.name: o for o in refresh_feeds(ctx, ctx.config.enabled_feeds)}
    assert outcomes["Json"].status == "failed" and "disk on fire" in outcomes["Json"].error
    assert articles_of(ctx.storage, "Json") == []  # its transaction rolled back whole
    assert rows_by_name(ctx.storage)["Json"]["consecutive_failures"] == 1
    assert outcomes["Steady"].status == "ok" and len(articles_of(ctx.storage, "Steady")) == 1


def test_a_mislabelled_charset_still_reads_right(first_refresh) -> None:
    ctx, _ = first_refresh
    [article] = articles_of(ctx.storage, "Charset")
    assert article["title"] == "Frégate livrée à Brest"


# --------------------------------------------------------------------------- article pages


@pytest.mark.parametrize("limit", [1, 2])
def test_pages_of_all_feeds_on_one_site_respect_page_per_host_limit(
    server: HostileServer, tmp_path: Path, make_ctx, limit: int
) -> None:
    # Three feeds fetched together, their twelve pages all on this one site: several
    # feeds' pages are in flight at once, page_concurrency (8) threads each, yet the
    # site never serves more than ``limit`` of them at a time.
    ctx = make_ctx(write_config(server, tmp_path, PACED, page_per_host_limit=limit))
    outcomes = refresh_feeds(ctx, ctx.config.enabled_feeds)
    assert [(o.name, o.status, o.new_articles) for o in outcomes] == [
        (name, "ok", 4) for name in PACED
    ]
    assert server.pages_peak == limit
    for name in PACED:
        articles = articles_of(ctx.storage, name)
        assert [a["extraction_status"] for a in articles] == ["extracted"] * 4


def test_stopping_gives_up_pages_waiting_for_their_site_and_keeps_the_feed_for_later(
    server: HostileServer, tmp_path: Path, make_ctx
) -> None:
    # The daemon is told to stop while Alpha's pages wait for the site's only slot
    # (held here, as by another feed's page): they give up, and Alpha is not stored
    # (not even its fetch state), so the next start fetches it and its pages again.
    feeds = {"Alpha": PACED["Alpha"]}
    ctx = make_ctx(write_config(server, tmp_path, feeds, page_per_host_limit=1))
    site = server.base_url + "/slow-pages/"
    hits_before = dict(server.hits)

    def stop_once_pages_wait() -> None:
        give_up = time.monotonic() + 10
        while not ctx.page_slots.waiting(site) and time.monotonic() < give_up:
            time.sleep(0.005)
        ctx.stop.set()

    stopper = threading.Thread(target=stop_once_pages_wait)
    with ctx.page_slots.hold(site):
        stopper.start()
        outcomes = refresh_feeds(ctx, ctx.config.enabled_feeds)
    stopper.join()

    assert outcomes == []
    row = rows_by_name(ctx.storage)["Alpha"]
    assert (row["articles"], row["last_attempt_at"], row["consecutive_failures"]) == (0, None, 0)
    assert ctx.storage.due_feed_urls(ctx.clock()) == [server.base_url + PACED["Alpha"]]
    assert {p: n for p, n in server.hits.items() if p.startswith("/slow-pages/")} == {
        p: n for p, n in hits_before.items() if p.startswith("/slow-pages/")
    }


# --------------------------------------------------------------------------- for the admin


def test_feeds_command_prints_the_health_table(first_refresh) -> None:
    ctx, _ = first_refresh
    result = CliRunner().invoke(cli, ["--config", str(ctx.config.path), "feeds"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert result.output.splitlines()[0].split()[:4] == ["FEED", "STATE", "HTTP", "FAILS"]
    assert " gone " in lines["Gone"] and "--reset" in lines["Gone"]
    assert " failing " in lines["Busy"] and "429" in lines["Busy"]
    assert " ok " in lines["Steady"] and "200" in lines["Steady"]
    assert "moved permanently to" in lines["Moved"]


async def get_all(app: Any, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aggregator.test") as c:
        return [await c.get(path) for path in paths]


def test_healthz_and_metrics_report_feed_health(first_refresh) -> None:
    ctx, _ = first_refresh
    app = create_app(ctx.config)
    app.state.storage = ctx.storage  # what the lifespan would open, on this thread
    health_response, metrics = asyncio.run(get_all(app, "/healthz", "/metrics"))
    health = health_response.json()
    assert health["status"] == "degraded"
    assert health["feeds"]["failing"] == len(HOSTILE)
    assert [feed["name"] for feed in health["gone"]] == ["Gone"]
    assert [feed["name"] for feed in health["moved"]] == ["Moved"]
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'aggregator_feed_fetches_total{outcome="failed"}' in text
    assert 'aggregator_feeds{state="gone"} 1.0' in text
    assert "aggregator_feed_fetch_seconds_bucket" in text
    assert "aggregator_stories " in text


def test_user_agent_names_the_software_and_a_contact(server: HostileServer, tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["user-agent"])
        return httpx.Response(404)

    config = write_config(server, tmp_path, {})
    from aggregator import __version__
    from aggregator.fetch import fetch_feed, make_client

    contact = config.settings.model_copy(update={"contact_url": "https://news.example.org/about"})
    for settings in (contact, config.settings):
        with make_client(settings, guard=False, transport=httpx.MockTransport(handler)) as c:
            with pytest.raises(HTTPStatusError):
                fetch_feed(c, "http://feed.test/", etag=None, last_modified=None, max_bytes=1000)
    assert seen[0] == f"aggregator/{__version__} (+https://news.example.org/about)"
    # Unset, no made-up contact is sent: the CLI warns the admin instead (issue 17).
    assert seen[1] == f"aggregator/{__version__}"


# --------------------------------------------------------------------------- big feeds


def test_big_feeds_are_parsed_in_a_worker_process_small_ones_inline() -> None:
    from aggregator.models import FetchResult
    from aggregator.parse.pool import ParsePool

    items = "".join(rss_item(f"big-{n}", f"Convoy {n} reaches the depot") for n in range(40))
    big = FetchResult(
        "http://big.test/feed", "http://big.test/feed", 200, rss("Big", items).encode()
    )
    small = FetchResult("http://small.test/feed", "http://small.test/feed", 200, CP1252_FEED)
    pool = ParsePool(1, big=len(big.content))
    try:
        assert len(pool.parse(small, now=NOW).entries) == 1
        assert pool._executor is None  # no process started for a small feed
        parsed = pool.parse(big, now=NOW)
        assert pool._executor is not None
        assert parsed == parse_pool.parse_feed(big, now=NOW)
        assert len(parsed.entries) == 40
    finally:
        pool.close()
