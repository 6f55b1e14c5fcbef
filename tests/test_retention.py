"""Retention, compaction and backup (issue 7): the database must not grow without
bound, pruning must keep the story tables consistent, and a backup is a sound copy.

A database is filled once from the invented sample site over loopback; each test
works on its own backup copy, with dates moved by hand to age stories out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.config import Settings, load_config
from aggregator.demo import DemoSite, demo_config_text
from aggregator.pipeline import PipelineContext, refresh_feeds
from aggregator.pipeline.prune import prune
from aggregator.storage import Storage

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=400)  # every sample article is long out of retention then


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("retention")
    with DemoSite() as site:
        path = tmp / "feeds.yaml"
        path.write_text(demo_config_text(site, listen="127.0.0.1:1", database=tmp / "full.db"))
        config = load_config(path)
        storage = Storage.open(config.database_path)
        ctx = PipelineContext.create(config, storage, workers=0)
        try:
            refresh_feeds(ctx, config.enabled_feeds)
        finally:
            ctx.close()
            storage.close()
    return tmp / "full.db"


@pytest.fixture
def storage(filled: Path, tmp_path: Path) -> Iterator[Storage]:
    source = Storage.open(filled)
    source.backup_to(tmp_path / "copy.db")
    source.close()
    copy = Storage.open(tmp_path / "copy.db")
    yield copy
    copy.close()


def _count(storage: Storage, sql: str) -> int:
    return int(storage.db.execute(sql).fetchone()[0])


def _assert_consistent(storage: Storage) -> None:
    """No row of the story index points at something pruned; FTS matches articles."""
    assert storage.integrity_problems() == []
    storage.db.execute("INSERT INTO article_search (article_search) VALUES ('integrity-check')")
    orphans = {
        "article_bands": "SELECT count(*) FROM article_bands WHERE article_id NOT IN"
        " (SELECT id FROM articles)",
        "story_keys": "SELECT count(*) FROM story_keys WHERE story_id NOT IN"
        " (SELECT id FROM stories)",
        "aliases": "SELECT count(*) FROM stories WHERE merged_into IS NOT NULL"
        " AND merged_into NOT IN (SELECT id FROM stories)",
        "empty stories": "SELECT count(*) FROM stories s WHERE merged_into IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.story_id = s.id)",
        "articles": "SELECT count(*) FROM articles WHERE story_id NOT IN (SELECT id FROM stories)",
    }
    for name, sql in orphans.items():
        assert _count(storage, sql) == 0, name


def test_nothing_recent_is_pruned(storage: Storage) -> None:
    before = _count(storage, "SELECT count(*) FROM articles")
    report = prune(storage, Settings(), NOW)
    assert (report.stories, report.articles) == (0, 0)
    assert _count(storage, "SELECT count(*) FROM articles") == before


def test_aged_out_stories_go_with_their_text_index_and_aliases(storage: Storage) -> None:
    newest = storage.recent_stories(1)[0]["id"]
    victim = storage.recent_stories(100)[-1]["id"]
    storage.db.execute(
        "INSERT INTO stories (id, created_at, published_at, updated_at, merged_into)"
        " VALUES ('alias-of-victim', '2026-01-01', '2026-01-01', '2026-01-01', ?)",
        [victim],
    )
    stories = _count(storage, "SELECT count(*) FROM stories WHERE merged_into IS NULL")
    articles = _count(storage, "SELECT count(*) FROM articles")
    report = prune(storage, Settings(feed_limit=1), LATER)
    assert report.stories == stories - 1  # only the newest, still published, is kept
    assert [row["id"] for row in storage.recent_stories(100)] == [newest]
    assert storage.resolve_story_id("alias-of-victim") is None
    assert _count(storage, "SELECT count(*) FROM articles") == articles - report.articles
    _assert_consistent(storage)
    assert storage.story_member_terms(newest)  # kept whole


def test_pruned_articles_leave_the_document_frequencies(storage: Storage) -> None:
    # IDF must keep describing the articles still stored, not every article ever seen.
    documents = _count(storage, "SELECT value FROM corpus_stats WHERE name = 'documents'")
    articles = _count(storage, "SELECT count(*) FROM articles")
    assert documents == articles
    prune(storage, Settings(feed_limit=1), LATER)
    remaining = _count(storage, "SELECT count(*) FROM articles")
    assert _count(storage, "SELECT value FROM corpus_stats WHERE name = 'documents'") == remaining
    assert _count(storage, "SELECT count(*) FROM term_stats WHERE df <= 0") == 0
    assert _count(storage, "SELECT max(df) FROM term_stats") <= remaining


def test_a_story_with_one_recent_member_is_kept_whole(storage: Storage) -> None:
    story = next(row for row in storage.recent_stories(100) if row["members"] >= 2)
    storage.db.execute(
        "UPDATE articles SET published_at = ? WHERE id = (SELECT min(id) FROM articles"
        " WHERE story_id = ?)",
        [(LATER - timedelta(days=1)).isoformat(timespec="seconds"), story["id"]],
    )
    prune(storage, Settings(feed_limit=1), LATER)
    assert len(storage.story_members(story["id"])) == story["members"]
    _assert_consistent(storage)


def test_pruned_pages_are_given_back(storage: Storage) -> None:
    assert _count(storage, "PRAGMA auto_vacuum") == 2  # new files are incremental
    pages = _count(storage, "PRAGMA page_count")
    report = prune(storage, Settings(feed_limit=1), LATER)
    assert report.pages_freed > 0
    assert _count(storage, "PRAGMA freelist_count") == 0
    assert _count(storage, "PRAGMA page_count") < pages


def test_an_old_file_is_converted_to_incremental_vacuum_by_prune(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    connection = sqlite3.connect(old)
    connection.execute("CREATE TABLE placeholder (x)")  # a table first: auto_vacuum stays off
    connection.commit()
    connection.close()
    storage = Storage.open(old)
    try:
        assert _count(storage, "PRAGMA auto_vacuum") == 0
        prune(storage, Settings(), NOW, convert=True)
        assert _count(storage, "PRAGMA auto_vacuum") == 2
    finally:
        storage.close()


def _config(tmp_path: Path, database: Path, extra: str = "") -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        f"settings:\n  database: {database}\n{extra}feeds:\n  - url: https://a.example/f\n"
    )
    return path


def test_the_prune_and_backup_commands(storage: Storage, tmp_path: Path) -> None:
    database = Path(storage.db.execute("PRAGMA database_list").fetchone()[2])
    articles = _count(storage, "SELECT count(*) FROM articles")
    config = _config(tmp_path, database, "  retention_days: 30\n")
    runner = CliRunner()
    backup = runner.invoke(cli, ["--config", str(config), "backup", str(tmp_path / "b.db")])
    assert backup.exit_code == 0, backup.output
    assert "backed up to" in backup.output
    copy = Storage.open(tmp_path / "b.db")
    try:
        assert copy.integrity_problems() == []
        assert _count(copy, "SELECT count(*) FROM articles") == articles
    finally:
        copy.close()
    assert not (tmp_path / "b.db.partial").exists()
    pruned = runner.invoke(cli, ["--config", str(config), "prune"])
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 0 stories (0 articles)" in pruned.output


def test_a_failed_backup_leaves_no_file_and_exits_1(storage: Storage, tmp_path: Path) -> None:
    database = Path(storage.db.execute("PRAGMA database_list").fetchone()[2])
    target = tmp_path / "missing-dir" / "b.db"
    result = CliRunner().invoke(
        cli, ["--config", str(_config(tmp_path, database)), "backup", str(target)]
    )
    assert result.exit_code == 1
    assert not target.exists()
