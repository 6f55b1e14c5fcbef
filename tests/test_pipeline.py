"""The pipeline in-process against the sample site on 127.0.0.1: isolation of failures,
the private-address guard, and idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import Config, load_config
from aggregator.demo import DemoSite, demo_config_text
from aggregator.pipeline import PipelineContext, refresh_feeds
from aggregator.pipeline.next_check import backoff_delay
from aggregator.storage import Storage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as served:
        yield served


def make_config(site: DemoSite, tmp_path: Path, extra: str = "", private: bool = True) -> Config:
    text = demo_config_text(site, listen="127.0.0.1:1", database=tmp_path / "db.sqlite")
    if not private:
        text = text.replace("allow_private_addresses: true", "allow_private_addresses: false")
    path = tmp_path / "feeds.yaml"
    path.write_text(text + extra)
    return load_config(path)


@pytest.fixture
def refresh(tmp_path: Path) -> Iterator[object]:
    contexts: list[PipelineContext] = []

    def run(config: Config) -> tuple[list[object], Storage]:
        storage = Storage.open(config.database_path)
        ctx = PipelineContext.create(config, storage, workers=0)
        contexts.append(ctx)
        return list(refresh_feeds(ctx, config.enabled_feeds)), storage

    yield run
    for ctx in contexts:
        ctx.close()
        ctx.storage.close()


def test_a_broken_feed_and_a_missing_feed_do_not_stop_the_others(
    site: DemoSite, tmp_path: Path, refresh
) -> None:
    site.overrides["/broken/feed.xml"] = (
        b"<html><body>Service temporarily unavailable</body></html>"
    )
    extra = (
        f'  - name: Broken\n    url: "{site.base_url}/broken/feed.xml"\n'
        f'  - name: Missing\n    url: "{site.base_url}/missing/feed.xml"\n'
    )
    outcomes, storage = refresh(make_config(site, tmp_path, extra))
    by_name = {outcome.name: outcome for outcome in outcomes}
    assert by_name["Broken"].status == "failed" and "not a feed" in by_name["Broken"].error
    assert by_name["Missing"].status == "failed" and "404" in by_name["Missing"].error
    assert [o.status for o in outcomes if o.name not in {"Broken", "Missing"}] == ["ok"] * 4
    health = {row["name"]: row for row in storage.feed_health()}
    assert health["Missing"]["last_status"] == 404
    assert health["Missing"]["consecutive_failures"] == 1
    assert health["Broken"]["last_error"].startswith("not a feed")
    assert health["Harbour Watch"]["last_error"] is None
    assert health["Harbour Watch"]["articles"] == 5


def test_article_links_to_private_addresses_are_refused_and_never_fetched(
    site: DemoSite, tmp_path: Path, refresh
) -> None:
    # The admin's feed URLs are on loopback and are fetched as given; the article
    # links inside them (strangers' URLs) point at loopback too and must be refused.
    outcomes, storage = refresh(make_config(site, tmp_path, private=False))
    assert all(outcome.status == "ok" for outcome in outcomes)
    page_hits = {path: n for path, n in site.hits.items() if path.endswith(".html")}
    assert page_hits == {}
    rows = list(storage.db.query("SELECT extraction_status, extraction_note, text FROM articles"))
    assert rows and {row["extraction_status"] for row in rows} == {"refused"}
    assert all(
        "private address" in row["extraction_note"] or "loopback" in row["extraction_note"]
        for row in rows
    )
    assert all(row["text"] for row in rows)  # the feed's own text is the floor


def test_refreshing_twice_stores_nothing_twice(site: DemoSite, tmp_path: Path, refresh) -> None:
    config = make_config(site, tmp_path)
    first, storage = refresh(config)
    counts = storage.counts()
    site.hits.clear()
    second, _ = refresh(config)
    assert sum(outcome.new_articles for outcome in first) == counts["articles"] == 19
    assert [outcome.status for outcome in second] == ["not-modified"] * 4
    assert storage.counts() == counts
    assert not any(path.endswith(".html") for path in site.hits)  # no page fetched again


def test_a_refresh_that_brings_articles_ends_with_a_refinement(
    site: DemoSite, tmp_path: Path, refresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 15: the open stories are clustered again once the refresh's articles are in
    from aggregator.pipeline import refine as pipeline

    calls: list[int] = []

    def counting(storage: Storage, now: datetime, settings: Any) -> object:
        plan = real(storage, now, settings)
        calls.append(storage.counts()["articles"])
        return plan

    real = pipeline.refine_open_stories
    monkeypatch.setattr(pipeline, "refine_open_stories", counting)
    config = make_config(site, tmp_path)
    refresh(config)
    assert calls == [19]  # once, after all four feeds were stored
    refresh(config)  # nothing new: nothing to refine
    assert calls == [19]


def test_the_daemon_refines_at_most_every_refine_every(
    site: DemoSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refinement goes over the whole open window however few articles arrived: the
    # daemon (a context that is not one-shot) runs it at most every refine_every (10m),
    # and articles placed meanwhile wait for the next one.
    from aggregator.pipeline import refine as pipeline

    refined_with: list[int] = []  # the articles stored at each refinement
    real = pipeline.refine_open_stories

    def counting(storage: Storage, now: datetime, settings: Any) -> object:
        refined_with.append(storage.counts()["articles"])
        return real(storage, now, settings)

    monkeypatch.setattr(pipeline, "refine_open_stories", counting)
    config = make_config(site, tmp_path)
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0)
    clock = [NOW]
    ctx.clock = lambda: clock[0]
    feeds = config.enabled_feeds
    try:
        refresh_feeds(ctx, feeds[:2])  # the process's first refinement: at once
        first = storage.counts()["articles"]
        assert refined_with == [first] and 0 < first < 19
        clock[0] += timedelta(minutes=1)
        refresh_feeds(ctx, feeds[2:])  # placed; the refinement waits
        assert refined_with == [first]
        assert ctx.refinement.after_article_id == storage.last_article_id() - (19 - first)
        clock[0] += timedelta(minutes=8)
        assert not pipeline.refine_if_due(ctx)
        clock[0] += timedelta(minutes=1)  # 10 minutes after the first
        assert pipeline.refine_if_due(ctx)
        assert refined_with == [first, 19]
        clock[0] += timedelta(hours=1)
        assert not pipeline.refine_if_due(ctx)  # nothing waits
        refresh_feeds(ctx, feeds)  # nothing new: nothing waits either
        assert not pipeline.refine_if_due(ctx) and refined_with == [first, 19]
    finally:
        ctx.close()
        storage.close()


def test_a_one_shot_refresh_refines_whenever_the_last_refinement_was(
    site: DemoSite, tmp_path: Path
) -> None:
    from aggregator.pipeline import refine as pipeline

    config = make_config(site, tmp_path)
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0, one_shot=True)
    ctx.clock = lambda: NOW
    ctx.refinement.last_run = NOW  # as if it had refined this very moment
    try:
        refresh_feeds(ctx, config.enabled_feeds)
        assert ctx.refinement.after_article_id is None  # refined at the end all the same
        assert ctx.refinement.last_run == NOW
        ctx.refinement.wait_for(0)
        ctx.refinement.last_run = NOW + timedelta(hours=1)  # the clock was set back since
        ctx.one_shot = False
        assert pipeline.refine_if_due(ctx)  # a clock set back holds nothing back
    finally:
        ctx.close()
        storage.close()


@pytest.mark.parametrize("one_shot", [True, False])
def test_a_one_shot_refresh_lets_its_workers_go_before_the_refinement(
    site: DemoSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_shot: bool
) -> None:
    # issue 18: the refinement is the refresh's memory peak; `aggregator refresh` has
    # no page left to extract by then, the daemon keeps its workers for the next cycle
    from aggregator.pipeline import refine as pipeline

    events: list[str] = []
    real = pipeline.refine_open_stories

    def refining(storage: Storage, now: datetime, settings: Any) -> object:
        events.append("refine")
        return real(storage, now, settings)

    monkeypatch.setattr(pipeline, "refine_open_stories", refining)
    config = make_config(site, tmp_path)
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0, one_shot=one_shot)
    monkeypatch.setattr(ctx.pool, "release", lambda: events.append("release"))
    try:
        refresh_feeds(ctx, config.enabled_feeds)
    finally:
        ctx.close()
        storage.close()
    assert events == (["release", "refine"] if one_shot else ["refine"])


def test_a_refresh_adds_its_articles_to_the_search_index_when_it_ends(
    site: DemoSite, tmp_path: Path, refresh
) -> None:
    # issue 18: queued in each feed's transaction, indexed in one statement at the end
    from aggregator.models import StoryFilter

    _, storage = refresh(make_config(site, tmp_path))
    queued = storage.db.execute("SELECT COUNT(*) FROM unindexed_articles").fetchone()[0]
    found = storage.published_stories(10, StoryFilter(query="Frostmark"))
    assert queued == 0
    titles = [story.title for story in found]
    assert "Ice-class supply ship Frostmark launched for Vesmark coast guard" in titles


def test_a_changed_feed_body_only_adds_the_new_entries(
    site: DemoSite, tmp_path: Path, refresh
) -> None:
    config = make_config(site, tmp_path)
    _, storage = refresh(config)
    before = storage.counts()
    feed = (site.root / "wirefeed/feed.xml").read_bytes()
    site.overrides["/wirefeed/feed.xml"] = feed + b"\n<!-- the same items, a new ETag -->"
    outcomes, _ = refresh(config)
    wire = next(outcome for outcome in outcomes if outcome.name == "Carrow Wire Service")
    assert wire.status == "ok" and wire.new_articles == 0
    assert storage.counts() == before


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, timedelta(minutes=30)),
        (1, timedelta(hours=1)),
        (2, timedelta(hours=2)),
        (5, timedelta(hours=16)),
        (6, timedelta(hours=24)),  # capped
        (40, timedelta(hours=24)),
    ],
)
def test_failing_feeds_back_off_exponentially_up_to_a_day(
    failures: int, expected: timedelta
) -> None:
    assert backoff_delay(timedelta(minutes=30), failures, timedelta(hours=24)) == expected
