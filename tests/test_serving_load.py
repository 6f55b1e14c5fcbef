"""The server under hostile load (issue 19, item 3): renders run off the event loop,
requests for one slice share one render, the work in flight is bounded, and a render
of content that changed meanwhile is not cached. Real loopback servers; no timing
assertions (the figures are in bench/healthz_under_load.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from aggregator.config import Config, load_config
from aggregator.publish.output import Rendered
from aggregator.serve import cache as render_cache
from aggregator.serve.server import create_app
from aggregator.storage import Storage
from tests.test_server import add_article, serving

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
T = TypeVar("T")
# Generous: only a server that never answers fails these; none measures speed.
PATIENCE = 20


class BlockedRenders:
    """Stands in for render_from_storage: every render waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls: list[int] = []

    def __call__(self, storage: Storage, settings: Any, fmt: str, limit: int, query: Any = None):
        self.calls.append(limit)
        self.started.release()
        assert self.release.wait(PATIENCE), "the test never released the render"
        return Rendered(f"<rss>{limit}</rss>".encode(), NOW, 0)

    def wait_started(self, count: int) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=PATIENCE), "a render never started"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Storage]]:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "settings:\n  database: db.sqlite\nfeeds:\n  - name: Naval\n    url: https://naval.test/feed\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    add_article(storage, 1, "a", None)
    try:
        with serving(create_app(config)) as base_url:
            yield base_url, storage
    finally:
        storage.close()


def get(base_url: str, path: str) -> httpx.Response:
    return httpx.get(base_url + path, timeout=PATIENCE)


def test_healthz_answers_while_renders_are_blocked(site, monkeypatch) -> None:
    # Issue 19: an uncached render ran on the event loop; 16 clients asking for new
    # slices pushed /healthz to a median of 8 s. Here the renders never finish until
    # /healthz and a cached feed have answered.
    base_url, _ = site
    cached = get(base_url, "/feed.json")  # rendered and cached before the block
    blocked = BlockedRenders()
    monkeypatch.setattr(render_cache, "render_from_storage", blocked)
    with ThreadPoolExecutor(4) as clients:
        pending = [clients.submit(get, base_url, f"/feed.xml?limit={n}") for n in (1, 2, 3, 4)]
        try:
            blocked.wait_started(1)
            health = httpx.get(base_url + "/healthz", timeout=PATIENCE)
            assert health.status_code == 200 and health.json()["stories"] == 1
            again = get(base_url, "/feed.json")
            assert again.status_code == 200 and again.content == cached.content
            assert not any(future.done() for future in pending)  # the renders still wait
        finally:
            blocked.release.set()
        assert [future.result().text for future in pending] == [
            f"<rss>{n}</rss>" for n in (1, 2, 3, 4)
        ]


def test_requests_for_one_slice_share_one_render(site, monkeypatch) -> None:
    base_url, _ = site
    blocked = BlockedRenders()
    monkeypatch.setattr(render_cache, "render_from_storage", blocked)
    arrived = count_arrivals(monkeypatch)
    with ThreadPoolExecutor(5) as clients:
        pending = [clients.submit(get, base_url, "/feed.xml?limit=7") for _ in range(5)]
        for _ in range(5):  # all five are waiting inside the server
            assert arrived.acquire(timeout=PATIENCE)
        blocked.release.set()
        assert {future.result().text for future in pending} == {"<rss>7</rss>"}
    assert get(base_url, "/feed.xml?limit=7").text == "<rss>7</rss>"  # from the cache
    assert blocked.calls == [7]


def count_arrivals(monkeypatch: pytest.MonkeyPatch) -> threading.Semaphore:
    """Released once per feed request that has reached the cache. The cache takes its
    render's place in flight before it first yields, so by the time the test thread
    sees the release, that request holds its place."""
    arrived = threading.Semaphore(0)
    feed = render_cache.FeedCache.feed

    async def counted(
        self: render_cache.FeedCache, fmt: str, query: Any, base_url: str | None = None
    ) -> render_cache.CachedBody:
        arrived.release()
        return await feed(self, fmt, query, base_url)

    monkeypatch.setattr(render_cache.FeedCache, "feed", counted)
    return arrived


def test_too_many_renders_in_flight_get_503_with_retry_after(site, monkeypatch) -> None:
    # Bounded work in flight: past the bound the server says "retry" instead of
    # queueing strangers' renders without end.
    base_url, _ = site
    monkeypatch.setattr(render_cache, "MAX_RENDERS_IN_FLIGHT", 3)
    blocked = BlockedRenders()
    monkeypatch.setattr(render_cache, "render_from_storage", blocked)
    arrived = count_arrivals(monkeypatch)
    with ThreadPoolExecutor(3) as clients:
        pending = [clients.submit(get, base_url, f"/feed.atom?limit={n}") for n in (1, 2, 3)]
        try:
            for _ in range(3):  # three renders in flight: two running, one queued
                assert arrived.acquire(timeout=PATIENCE)
            refused = get(base_url, "/feed.atom?limit=9")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == str(render_cache.RETRY_AFTER_SECONDS)
            assert get(base_url, "/healthz").status_code == 200
        finally:
            blocked.release.set()
        assert [future.result().status_code for future in pending] == [200, 200, 200]
    assert get(base_url, "/feed.atom?limit=9").status_code == 200  # room again


class GatedPool:
    """A render pool that renders on the caller's thread once the gate opens."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.gate = asyncio.Event()

    async def run(self, work: Callable[[Storage], T]) -> T:
        await self.gate.wait()
        return work(self.storage)


def test_a_render_of_content_that_changed_meanwhile_is_not_kept(tmp_path: Path) -> None:
    writer = Storage.open(tmp_path / "db.sqlite")
    reader = Storage.open(tmp_path / "db.sqlite")
    try:
        writer.sync_feeds(load_config_for(tmp_path).feeds, NOW)
        pool = GatedPool(reader)
        cache = render_cache.FeedCache(reader, Config(), pool)  # type: ignore[arg-type]
        versions: list[str] = []

        def render(storage: Storage) -> render_cache.CachedBody:
            versions.append(storage.content_version())
            return render_cache.CachedBody.of(versions[-1].encode(), NOW, "text/plain")

        async def scenario() -> tuple[bytes, bytes, bytes]:
            early = asyncio.ensure_future(cache.get(("k",), render))
            await asyncio.sleep(0)  # its render waits at the gate
            add_article(writer, 1, "late", None)  # the content changes meanwhile
            late = asyncio.ensure_future(cache.get(("k",), render))
            await asyncio.sleep(0)
            pool.gate.set()
            first, second = await early, await late
            kept = await cache.get(("k",), render)
            return first.body, second.body, kept.body

        first, second, kept = asyncio.run(scenario())
        assert len(versions) == 2  # the late request did not join the older render
        assert kept == second and kept == versions[-1].encode()
    finally:
        writer.close()
        reader.close()


def load_config_for(directory: Path) -> Config:
    path = directory / "feeds.yaml"
    path.write_text("feeds:\n  - name: Naval\n    url: https://naval.test/feed\n")
    return load_config(path)
