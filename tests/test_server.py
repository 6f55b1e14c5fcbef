"""The HTTP server: formats, content types, conditional requests, health."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn

from aggregator.config import Config, FeedSource, load_config
from aggregator.models import Assignment, NewArticle
from aggregator.pipeline.stories import merge_by_admin
from aggregator.serve import cache as render_cache
from aggregator.serve.server import create_app
from aggregator.storage import Storage

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
T = TypeVar("T")


def add_article(storage: Storage, feed_id: int, key: str, story: str | None) -> None:
    article = NewArticle(
        feed_id=feed_id, entry_key=key, guid=None, url=f"https://naval.test/{key}",
        canonical_url=f"https://naval.test/{key}", title=f"Frigate {key} floated out",
        author=None, summary="", feed_content="", text="Body text.", html="<p>Body text.</p>",
        image=None, published_at=NOW, fetched_at=NOW, extraction_status="extracted",
        extraction_note="", signature=None, bands=(),
    )  # fmt: skip
    assignment = Assignment(story, "url" if story else "new", 1.0 if story else None)
    with storage.transaction():
        storage.add_article(article, assignment, f"story-{key}")
    storage.index_for_search()  # as at the end of the refresh that stored it


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Run the app with uvicorn on a free loopback port in a thread; yield its base URL,
    and stop it on the way out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[httpx.Client, Storage]]:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "settings:\n  database: db.sqlite\nfeeds:\n  - name: Naval\n    url: https://naval.test/feed\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds([FeedSource(url="https://naval.test/feed", name="Naval")], NOW)
    add_article(storage, 1, "a", None)
    try:
        with serving(create_app(config)) as base_url, httpx.Client(base_url=base_url) as test:
            yield test, storage
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/feed.xml", "application/rss+xml"),
        ("/feed.atom", "application/atom+xml"),
        ("/feed.json", "application/feed+json"),
    ],
)
def test_each_format_has_its_content_type_and_validators(
    client, path: str, content_type: str
) -> None:
    test_client, _ = client
    response = test_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["etag"] and response.headers["last-modified"]
    head = test_client.head(path)
    assert head.status_code == 200 and head.headers["etag"] == response.headers["etag"]


def test_conditional_request_gets_304_until_the_feed_changes(client) -> None:
    test_client, storage = client
    first = test_client.get("/feed.json")
    etag = first.headers["etag"]
    assert test_client.get("/feed.json", headers={"If-None-Match": etag}).status_code == 304
    add_article(storage, 1, "b", "story-a")  # a second source joins the story
    changed = test_client.get("/feed.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    item = changed.json()["items"][0]
    assert len(item["_aggregator"]["sources"]) == 2
    assert item["id"] == first.json()["items"][0]["id"]  # the story keeps its id


def test_limit_parameter_is_bounded(client) -> None:
    test_client, storage = client
    add_article(storage, 1, "c", None)
    assert len(test_client.get("/feed.json?limit=1").json()["items"]) == 1
    assert len(test_client.get("/feed.json?limit=nonsense").json()["items"]) == 2


def test_healthz_reports_counts(client) -> None:
    test_client, _ = client
    health = test_client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["stories"] == 1 and health["articles"] == 1
    # Never fetched (the fixture stores articles directly): pending, not ok (issue 17).
    assert health["feeds"] == {"total": 1, "ok": 0, "failing": 0, "pending": 1}


# --- issue 6: cheap to poll, slices, the page, OPML, over a real socket ---------------

SITE_CONFIG = """\
settings:
  database: db.sqlite
  public_url: https://news.example.org
  cache_max_age: 300
  title_source_count: true
feeds:
  - name: Naval
    url: https://naval.test/feed
    tags: [naval]
  - name: Air Desk
    url: https://air.test/feed
    tags: [air]
outputs:
  - path: /naval.xml
    title: Naval only
    tags: [naval]
  - path: /top.json
    min_sources: 2
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Storage]]:
    """Stories a (Naval, then Air Desk joins), c (Naval) and d (Air Desk); read only."""
    path = tmp_path_factory.mktemp("site") / "feeds.yaml"
    path.write_text(SITE_CONFIG)
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    add_article(storage, 1, "a", None)
    add_article(storage, 2, "a-air", "story-a")
    add_article(storage, 1, "c", None)
    add_article(storage, 2, "d", None)
    try:
        with serving(create_app(config)) as base_url, httpx.Client(base_url=base_url) as test:
            yield test, storage
    finally:
        storage.close()


def item_ids(response: httpx.Response) -> list[str]:
    return [item["id"].rsplit(":", 1)[1] for item in response.json()["items"]]


def test_gzip_when_asked_and_identity_otherwise(site) -> None:
    test_client, _ = site
    plain = test_client.get("/feed.xml", headers={"Accept-Encoding": "identity"})
    zipped = test_client.get("/feed.xml", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decompressed it
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert zipped.headers["vary"] == "Accept-Encoding"
    refused = test_client.get("/feed.xml", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_if_none_match_with_either_variants_etag_gets_304(site) -> None:
    test_client, _ = site
    plain = test_client.get("/feed.atom", headers={"Accept-Encoding": "identity"})
    zipped = test_client.get("/feed.atom", headers={"Accept-Encoding": "gzip"})
    for etag in (plain.headers["etag"], zipped.headers["etag"], f"W/{plain.headers['etag']}"):
        response = test_client.get("/feed.atom", headers={"If-None-Match": f'"other", {etag}'})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] and response.headers["cache-control"]


def test_if_modified_since(site) -> None:
    test_client, _ = site
    first = test_client.get("/feed.json")
    last_modified = first.headers["last-modified"]
    assert (
        test_client.get("/feed.json", headers={"If-Modified-Since": last_modified}).status_code
        == 304
    )
    old = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert test_client.get("/feed.json", headers={"If-Modified-Since": old}).status_code == 200
    junk = test_client.get("/feed.json", headers={"If-Modified-Since": "yesterday"})
    assert junk.status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert test_client.get("/feed.json", headers=both).status_code == 200


def test_head_has_the_get_headers_and_no_body(site) -> None:
    test_client, _ = site
    get = test_client.get("/feed.xml", headers={"Accept-Encoding": "identity"})
    head = test_client.head("/feed.xml", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"]


def test_cache_control_comes_from_settings(site) -> None:
    test_client, _ = site
    for path in ("/feed.xml", "/", "/sources.opml", "/naval.xml"):
        assert test_client.get(path).headers["cache-control"] == "public, max-age=300", path


def test_slices_by_query_parameters(site) -> None:
    test_client, _ = site
    assert item_ids(test_client.get("/feed.json")) == ["story-a", "story-c", "story-d"]
    assert item_ids(test_client.get("/feed.json?tag=air")) == ["story-a", "story-d"]
    assert item_ids(test_client.get("/feed.json?source=Naval")) == ["story-a", "story-c"]
    assert item_ids(test_client.get("/feed.json?min_sources=2")) == ["story-a"]
    assert item_ids(test_client.get("/feed.json?q=frigate+d")) == ["story-d"]
    assert item_ids(test_client.get("/feed.json?tag=space")) == []
    rss = test_client.get("/feed.xml?tag=naval")
    assert b"https://news.example.org/feed.xml?tag=naval" in rss.content  # rel=self


def test_named_slices_from_feeds_yaml(site) -> None:
    test_client, _ = site
    naval = test_client.get("/naval.xml")
    assert naval.headers["content-type"].startswith("application/rss+xml")
    assert b"<title>Naval only</title>" in naval.content
    assert naval.content.count(b"<item>") == 2
    # It links to itself as it is subscribed to: the WebSub topic and rel=self agree.
    assert b'<atom:link href="https://news.example.org/naval.xml" rel="self"' in naval.content
    air = test_client.get("/naval.xml?tag=air").content
    assert b'href="https://news.example.org/naval.xml?tag=air" rel="self"' in air
    top = test_client.get("/top.json")
    assert item_ids(top) == ["story-a"]
    assert top.json()["items"][0]["title"].endswith("(2 sources)")
    assert item_ids(test_client.get("/top.json?min_sources=1")) == ["story-a", "story-c", "story-d"]


def test_paging_follows_next_links_to_the_end(site) -> None:
    test_client, _ = site
    seen: list[str] = []
    url: str | None = "/feed.json?limit=2"
    while url:
        page = test_client.get(url).json()
        seen += [item["id"].rsplit(":", 1)[1] for item in page["items"]]
        url = page.get("next_url", "").removeprefix("https://news.example.org") or None
    assert seen == ["story-a", "story-c", "story-d"]
    atom = test_client.get("/feed.atom?limit=2").text
    assert 'rel="next"' in atom and "after=" in atom


def test_damaged_cursor_is_a_400(site) -> None:
    test_client, _ = site
    response = test_client.get("/feed.xml?after=%21%21")
    assert response.status_code == 400 and "cursor" in response.text


def test_the_page_lists_stories_with_autodiscovery(site) -> None:
    test_client, _ = site
    response = test_client.get("/?tag=naval")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert "Frigate a floated out" in html and "Frigate d floated out" not in html
    assert '<link rel="alternate" type="application/rss+xml"' in html
    assert 'href="/feed.atom?tag=naval"' in html
    assert 'href="/naval.xml"' in html  # named slices are discoverable too
    assert (
        test_client.get("/", headers={"If-None-Match": response.headers["etag"]}).status_code == 200
    )
    again = test_client.get("/?tag=naval", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_sources_opml_lists_the_configured_feeds(site) -> None:
    test_client, _ = site
    response = test_client.get("/sources.opml")
    assert response.headers["content-type"].startswith("text/x-opml")
    assert b'xmlUrl="https://air.test/feed"' in response.content
    assert test_client.head("/sources.opml").status_code == 200


def test_cache_drops_least_recently_used_bodies_past_its_byte_budget(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slices come from strangers' query strings: memory stays bounded (issue 6).
    monkeypatch.setattr(render_cache, "MAX_CACHED_BYTES", 1200)  # room for two bodies
    cache = render_cache.FeedCache(storage, Config(), InlinePool(storage))  # type: ignore[arg-type]
    renders: list[str] = []

    def body(name: str) -> render_cache.CachedBody:
        renders.append(name)
        return render_cache.CachedBody.of(name.encode() * 500, NOW, "text/plain")  # ~530 bytes

    def render_named(name: str, _storage: Storage) -> render_cache.CachedBody:
        return body(name)

    async def ask() -> None:
        for name in ("a", "b", "a", "c", "a", "b"):
            await cache.get((name,), functools.partial(render_named, name))

    asyncio.run(ask())
    assert renders == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came


class InlinePool:
    """A render pool that renders on the caller's thread, with the caller's storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def run(self, work: Callable[[Storage], T]) -> T:
        return work(self.storage)


def test_feeds_name_the_lead_outlet_read_from_storage(site) -> None:
    # Issue 17: readers list outlets; storage supplies the lead's feed URL.
    test_client, _ = site
    rss = test_client.get("/feed.xml?source=Naval&limit=1").text
    assert '<source url="https://naval.test/feed">Naval</source>' in rss
    assert "<dc:creator>Naval</dc:creator>" in rss
    atom = test_client.get("/feed.atom?source=Naval&limit=1").text
    assert "<id>https://naval.test/feed</id>" in atom


# --- issue 17: the reading view, and why no stories arrive ------------------------------


def test_story_reading_view_beside_its_json(client) -> None:
    test_client, storage = client
    add_article(storage, 1, "b", "story-a")
    add_article(storage, 1, "c", None)
    view = test_client.get("/stories/story-a.html")
    assert view.status_code == 200
    assert view.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in view.headers["content-security-policy"]
    assert view.text.count("Naval: <a href=") == 2 and "Frigate b floated out" in view.text
    etag = view.headers["etag"]
    assert (
        test_client.get("/stories/story-a.html", headers={"If-None-Match": etag}).status_code == 304
    )
    # /stories/ID is still the JSON, as it was.
    story = test_client.get("/stories/story-a").json()
    assert list(story) == [
        "id", "story_id", "title", "url", "date_published", "date_modified", "aliases", "sources"
    ]  # fmt: skip
    # A merged id answers 301 to the survivor's view; an unknown id 404, as HTML.
    with storage.transaction():
        survivor = merge_by_admin(storage, "story-a", "story-c", NOW)
    gone = "story-c" if survivor == "story-a" else "story-a"
    moved = test_client.get(f"/stories/{gone}.html", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/stories/{survivor}.html"
    missing = test_client.get("/stories/nothing-here.html")
    assert missing.status_code == 404 and "No story has the id nothing-here." in missing.text
    assert missing.headers["content-type"] == "text/html; charset=utf-8"


def test_page_says_so_when_every_feed_is_failing(client) -> None:
    # Issue 17: the page said "No stories match." with every feed failing. The page is
    # cached per content version, so a feed's state changing must renew it.
    test_client, storage = client
    assert 'class="notice"' not in test_client.get("/").text
    storage.record_fetch_failure(1, now=NOW, next_check=None, error="HTTP 500", status=500)
    page = test_client.get("/").text
    assert "Every feed is failing (1 of 1)" in page
    assert "Frigate a floated out" in page  # what is stored stays listed
