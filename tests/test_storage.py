"""Tests for aggregator.storage: the schema, feed state, articles grouped into stories,
and what the published feed reads back. Every test gets a fresh database file
(the ``storage`` fixture in conftest.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import FeedSource
from aggregator.errors import StorageError
from aggregator.models import Assignment, NewArticle, StoredPage
from aggregator.storage import Storage

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NEW = Assignment(None, "new")

WIRE = FeedSource(url="https://wire.example/feed", name="Northern Wire", tags=("wire", "land"))
HARBOUR = FeedSource(url="https://harbour.example/rss", name="Harbour Weekly", tags=("naval",))


def new_article(feed_id: int, key: str, **changes: Any) -> NewArticle:
    """An extracted article with sensible defaults; override any field by keyword."""
    values: dict[str, Any] = {
        "feed_id": feed_id,
        "entry_key": key,
        "guid": None,
        "url": f"https://news.example/{key}?utm_source=rss",
        "canonical_url": f"https://news.example/{key}",
        "title": f"Story {key}",
        "author": None,
        "summary": "",
        "feed_content": "",
        "text": f"Body of {key}.\nSecond paragraph.",
        "html": f"<p>Body of {key}.</p>",
        "image": None,
        "published_at": NOW - HOUR,
        "fetched_at": NOW,
        "extraction_status": "extracted",
        "extraction_note": "",
        "signature": None,
        "bands": (),
    }
    values.update(changes)
    return NewArticle(**values)


def feed_ids(storage: Storage, *sources: FeedSource) -> list[int]:
    storage.sync_feeds(sources, NOW)
    return [storage.feed_state(source.url).id for source in sources]


def count(storage: Storage, table: str) -> int:
    return storage.counts()[table]


def add(storage: Storage, article: NewArticle, assignment: Assignment = NEW) -> int:
    with storage.transaction():
        return storage.add_article(article, assignment, f"story-{article.entry_key}")


def column(storage: Storage, sql: str, params: list[Any] | None = None) -> Any:
    return next(iter(storage.db.execute(sql, params or []).fetchone()))


# -- schema ----------------------------------------------------------------------------


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    first = Storage.open(path, migrate=False)
    try:
        applied = first.migrate()
        assert applied[0] == "m001_initial_schema"
        assert applied == sorted(applied)  # in order, each once
        assert {"feeds", "stories", "articles", "article_bands"} <= set(first.db.table_names())
    finally:
        first.close()
    second = Storage.open(path)
    try:
        assert second.migrate() == []
    finally:
        second.close()


def test_database_is_in_wal_mode(storage: Storage) -> None:
    assert column(storage, "PRAGMA journal_mode") == "wal"
    assert column(storage, "PRAGMA foreign_keys") == 1


def test_opening_the_database_never_waits_for_the_writer(tmp_path: Path) -> None:
    """A reader's connection (the server's render threads, `aggregator feeds`) opened
    while the daemon holds a write transaction waited for it (up to the 10 s busy
    timeout, then "database is locked"), and failed outright on a full disk: setting
    auto_vacuum on an existing file takes the write lock, though it only takes effect
    on a new file."""
    Storage.open(tmp_path / "news.db").close()
    writer = sqlite3.connect(tmp_path / "news.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the daemon, mid-refresh
        reader = Storage.open(tmp_path / "news.db", check_same_thread=False)
        assert reader.db.execute("SELECT count(*) FROM feeds").fetchone() == (0,)
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open database"):
        Storage.open(tmp_path / "a-file" / "test.db")


# -- feeds -----------------------------------------------------------------------------


def test_sync_feeds_inserts_listed_feeds(storage: Storage) -> None:
    storage.sync_feeds([WIRE, HARBOUR], NOW)
    rows = {row["url"]: row for row in storage.feed_health()}
    assert set(rows) == {WIRE.url, HARBOUR.url}
    assert rows[WIRE.url]["name"] == "Northern Wire"
    assert rows[WIRE.url]["enabled"] == 1
    assert column(storage, "SELECT tags FROM feeds WHERE url = ?", [WIRE.url]) == '["wire", "land"]'


def test_sync_feeds_updates_name_and_tags_in_place(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    renamed = WIRE.model_copy(update={"name": "Wire Service", "tags": ("wire",)})
    storage.sync_feeds([renamed], NOW + HOUR)
    state = storage.feed_state(WIRE.url)
    assert (state.id, state.name) == (feed_id, "Wire Service")
    assert column(storage, "SELECT tags FROM feeds WHERE id = ?", [feed_id]) == '["wire"]'


def test_sync_feeds_disables_feeds_dropped_from_config(storage: Storage) -> None:
    storage.sync_feeds([WIRE, HARBOUR], NOW)
    storage.sync_feeds([WIRE], NOW)
    enabled = {row["url"]: row["enabled"] for row in storage.feed_health()}
    assert enabled == {WIRE.url: 1, HARBOUR.url: 0}
    storage.sync_feeds([WIRE, HARBOUR], NOW)  # listed again: polled again
    assert {row["enabled"] for row in storage.feed_health()} == {1}


def test_feed_state_of_unknown_feed_is_a_storage_error(storage: Storage) -> None:
    with pytest.raises(StorageError, match="not in database"):
        storage.feed_state("https://unknown.example/feed")


def test_due_feeds_respect_next_check_and_enabled(storage: Storage) -> None:
    disabled = FeedSource(url="https://off.example/feed", enabled=False)
    wire_id, _, _ = feed_ids(storage, WIRE, HARBOUR, disabled)
    assert storage.due_feed_urls(NOW) == [WIRE.url, HARBOUR.url]  # new feeds are due at once
    with storage.transaction():
        storage.record_fetch_success(
            wire_id, now=NOW, next_check=NOW + HOUR, status=200, etag=None, last_modified=None
        )
    assert storage.due_feed_urls(NOW) == [HARBOUR.url]
    assert storage.due_feed_urls(NOW + HOUR) == [HARBOUR.url, WIRE.url]


def test_record_fetch_success_and_failure(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    for attempt in (1, 2):
        storage.record_fetch_failure(
            feed_id, now=NOW, next_check=NOW + attempt * HOUR, error="HTTP 503", status=503
        )
        assert storage.feed_state(WIRE.url).consecutive_failures == attempt
    (row,) = storage.feed_health()
    assert (row["last_error"], row["last_status"]) == ("HTTP 503", 503)
    assert row["last_success_at"] is None

    with storage.transaction():
        storage.record_fetch_success(
            feed_id,
            now=NOW,
            next_check=NOW + HOUR,
            status=200,
            etag='"v7"',
            last_modified="Mon, 10 Mar 2025 11:00:00 GMT",
            title="Northern Wire: all stories",
            permanent_url="https://wire.example/new-feed",
        )
    state = storage.feed_state(WIRE.url)
    assert state.consecutive_failures == 0
    assert (state.etag, state.last_modified) == ('"v7"', "Mon, 10 Mar 2025 11:00:00 GMT")
    assert state.permanent_url == "https://wire.example/new-feed"
    (row,) = storage.feed_health()
    assert (row["last_error"], row["last_status"]) == (None, 200)
    assert row["last_success_at"] == row["last_attempt_at"] == "2025-03-10T12:00:00+00:00"


def test_a_feed_is_new_until_its_first_success(storage: Storage) -> None:
    """Issue 17: a feed never fetched successfully retries soon, also across restarts."""
    wire_id, harbour_id = feed_ids(storage, WIRE, HARBOUR)
    for feed_id in (wire_id, harbour_id):
        storage.record_fetch_failure(
            feed_id, now=NOW, next_check=NOW + HOUR, error="HTTP 500", status=500
        )
    assert not storage.feed_state(WIRE.url).ever_fetched
    with storage.transaction():
        storage.record_fetch_success(
            wire_id, now=NOW, next_check=NOW + HOUR, status=200, etag=None, last_modified=None
        )
    storage.record_fetch_failure(
        wire_id, now=NOW, next_check=NOW + 2 * HOUR, error="HTTP 500", status=500
    )
    assert storage.feed_state(WIRE.url).ever_fetched
    assert storage.due_feed_urls(NOW) == []
    # A restart makes the never-fetched feed due at once; the other keeps its backoff.
    assert storage.make_unfetched_feeds_due(NOW) == [HARBOUR.url]
    assert storage.due_feed_urls(NOW) == [HARBOUR.url]
    assert storage.make_unfetched_feeds_due(NOW) == []


def test_reset_all_forgets_every_feeds_failures(storage: Storage) -> None:
    ids = feed_ids(storage, WIRE, HARBOUR)
    for feed_id in ids:
        storage.record_fetch_failure(
            feed_id, now=NOW, next_check=None, error="HTTP 410", status=410, disabled_reason="gone"
        )
    assert storage.due_feed_urls(NOW + HOUR) == []
    assert sorted(storage.reset_feed(None, NOW)) == sorted([WIRE.url, HARBOUR.url])
    assert storage.due_feed_urls(NOW) == [WIRE.url, HARBOUR.url]
    assert {row["consecutive_failures"] for row in storage.feed_health()} == {0}


def test_success_without_validators_keeps_the_old_ones(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    for etag in ('"v1"', None):  # a 304 may come back without an ETag
        with storage.transaction():
            storage.record_fetch_success(
                feed_id, now=NOW, next_check=NOW, status=200, etag=etag, last_modified=None
            )
    assert storage.feed_state(WIRE.url).etag == '"v1"'


# -- articles and stories ----------------------------------------------------------------


def test_new_article_creates_its_story(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    article_id = add(storage, new_article(feed_id, "a1"))
    story = storage.db.table("stories").get("story-a1")
    assert story["lead_article_id"] == article_id
    assert story["published_at"] == "2025-03-10T11:00:00+00:00"
    article = storage.db.table("articles").get(article_id)
    assert (article["story_id"], article["method"]) == ("story-a1", "new")


@pytest.mark.parametrize(
    "published",
    [NOW - HOUR, None, NOW + HOUR],  # dated by the feed, undated, dated after fetching
)
def test_a_new_story_is_dated_as_refreshing_it_would_date_it(
    storage: Storage, published: datetime | None
) -> None:
    # A new story is dated and led as it is created (no aggregate queries after):
    # exactly what refresh_story gives a story of that one article.
    (feed_id,) = feed_ids(storage, WIRE)
    article_id = add(storage, new_article(feed_id, "a1", published_at=published))
    created = storage.db.table("stories").get("story-a1")
    storage.refresh_story("story-a1", NOW)
    assert created == storage.db.table("stories").get("story-a1")
    assert created["lead_article_id"] == article_id
    assert created["last_member_at"] == (published or NOW).isoformat()


def test_a_new_story_whose_id_is_taken_joins_that_story(storage: Storage) -> None:
    # new_story_id is a hash of the feed and the entry: should it name a story that
    # exists, the article joins it and the story is dated over both.
    (feed_id,) = feed_ids(storage, WIRE)
    first = add(storage, new_article(feed_id, "a1", published_at=NOW - 5 * HOUR))
    later = new_article(feed_id, "a2", published_at=NOW + HOUR, fetched_at=NOW + 2 * HOUR)
    with storage.transaction():
        storage.add_article(later, NEW, "story-a1")
    story = storage.db.table("stories").get("story-a1")
    assert story["lead_article_id"] == first
    assert story["published_at"] == (NOW - 5 * HOUR).isoformat()
    assert story["last_member_at"] == (NOW + HOUR).isoformat()
    assert story["updated_at"] == (NOW + 2 * HOUR).isoformat()


def test_second_article_joins_the_story_and_moves_updated_at(storage: Storage) -> None:
    wire_id, harbour_id = feed_ids(storage, WIRE, HARBOUR)
    first = add(storage, new_article(wire_id, "a1"))
    before = storage.db.table("stories").get("story-a1")
    joined = Assignment("story-a1", "near-duplicate", 0.8, first)
    copy = new_article(harbour_id, "h1", published_at=NOW, fetched_at=NOW + HOUR)
    second = add(storage, copy, joined)
    after = storage.db.table("stories").get("story-a1")
    assert count(storage, "stories") == 1
    assert after["lead_article_id"] == first  # the earliest extracted article leads
    assert after["published_at"] == before["published_at"]
    assert after["updated_at"] == "2025-03-10T13:00:00+00:00" > before["updated_at"]
    row = storage.db.table("articles").get(second)
    assert (row["story_id"], row["method"], row["score"]) == ("story-a1", "near-duplicate", 0.8)
    assert row["matched_article_id"] == first


def test_extracted_article_leads_over_an_earlier_fallback(storage: Storage) -> None:
    wire_id, harbour_id = feed_ids(storage, WIRE, HARBOUR)
    early = new_article(wire_id, "a1", published_at=NOW - 5 * HOUR, extraction_status="fallback")
    first = add(storage, early)
    second = add(storage, new_article(harbour_id, "h1"), Assignment("story-a1", "url", 1.0, first))
    assert storage.db.table("stories").get("story-a1")["lead_article_id"] == second


def test_same_entry_twice_raises_and_rolls_back_whole(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    add(storage, new_article(feed_id, "a1", bands=("0:aa",)))
    before = storage.counts(), column(storage, "SELECT count(*) FROM article_bands")
    # The pipeline asks entry_digests() first; the constraint is the backstop.
    with pytest.raises(StorageError, match="UNIQUE"):
        with storage.transaction():
            storage.add_article(new_article(feed_id, "b1"), NEW, "story-b1")
            storage.add_article(new_article(feed_id, "a1"), NEW, "story-a1-again")
    assert (storage.counts(), column(storage, "SELECT count(*) FROM article_bands")) == before
    assert storage.db["stories"].count == 1
    assert set(storage.entry_digests(feed_id, ["a1", "b1"])) == {"a1"}


def test_stored_entries_are_per_feed(storage: Storage) -> None:
    wire_id, harbour_id = feed_ids(storage, WIRE, HARBOUR)
    add(storage, new_article(wire_id, "a1"))
    add(storage, new_article(wire_id, "a2", canonical_url="https://news.example/other"))
    assert set(storage.entry_digests(wire_id, ["a1", "a2", "a3"])) == {"a1", "a2"}
    assert storage.entry_digests(harbour_id, ["a1"]) == {}
    assert storage.entry_digests(wire_id, []) == {}


def test_duplicate_candidates_by_url_guid_and_band(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    by_url = add(storage, new_article(feed_id, "u", canonical_url="https://news.example/same"))
    by_guid = add(storage, new_article(feed_id, "g", guid="tag:wire.example,2025:g"))
    by_band = add(storage, new_article(feed_id, "b", bands=("3:abc", "4:def"), signature=b"s"))
    add(storage, new_article(feed_id, "unrelated", guid="tag:x", bands=("3:zzz",)))

    def found(**query: Any) -> list[int]:
        defaults: dict[str, Any] = {"canonical_url": "", "guid": None, "bands": (), "since": NOW}
        return [c.article_id for c in storage.duplicate_candidates(**{**defaults, **query})]

    assert found(canonical_url="https://news.example/same") == [by_url]
    assert found(guid="tag:wire.example,2025:g") == [by_guid]
    assert found(bands=["4:def", "9:nope"]) == [by_band]
    assert found(
        canonical_url="https://news.example/same", guid="tag:wire.example,2025:g", bands=["3:abc"]
    ) == [by_url, by_guid, by_band]
    assert found() == []  # no guid never matches articles without one
    assert found(canonical_url="https://news.example/same", since=NOW + HOUR) == []
    (candidate,) = storage.duplicate_candidates(
        canonical_url="", guid=None, bands=["3:abc"], since=NOW
    )
    assert (candidate.story_id, candidate.signature) == ("story-b", b"s")


def test_stored_page_returns_only_extracted_pages(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    add(storage, new_article(feed_id, "ok", image="https://news.example/ok.jpg", author="Ann"))
    add(storage, new_article(feed_id, "fb", extraction_status="fallback"))
    assert storage.stored_page("https://news.example/ok") == StoredPage(
        text="Body of ok.\nSecond paragraph.",
        html="<p>Body of ok.</p>",
        image="https://news.example/ok.jpg",
        author="Ann",
        extraction_status="extracted",
    )
    assert storage.stored_page("https://news.example/fb") is None
    assert storage.stored_page("https://news.example/missing") is None


# -- publishing ------------------------------------------------------------------------


def test_published_stories_lead_first_newest_first(storage: Storage) -> None:
    wire_id, harbour_id = feed_ids(storage, WIRE, HARBOUR)
    add(storage, new_article(harbour_id, "old", published_at=NOW - 10 * HOUR))
    lead = add(storage, new_article(wire_id, "lead", published_at=NOW - 2 * HOUR))
    copy = new_article(harbour_id, "copy", published_at=NOW - HOUR, title="Copy of lead")
    add(storage, copy, Assignment("story-lead", "near-duplicate", 0.9, lead))

    newest, oldest = storage.published_stories(limit=10)
    assert (newest.id, oldest.id) == ("story-lead", "story-old")
    assert newest.title == "Story lead"
    assert newest.link == "https://news.example/lead"  # published without tracking
    assert newest.summary == "Body of lead."
    assert newest.published == NOW - 2 * HOUR
    assert newest.tags == ("land", "naval", "wire")  # from both member feeds, sorted
    assert [(s.feed_name, s.relation, s.score) for s in newest.sources] == [
        ("Northern Wire", "lead", None),
        ("Harbour Weekly", "duplicate", 0.9),
    ]
    assert oldest.tags == ("naval",)
    assert [s.relation for s in oldest.sources] == ["lead"]
    assert [story.id for story in storage.published_stories(limit=1)] == ["story-lead"]


def test_published_stories_of_empty_database(storage: Storage) -> None:
    assert storage.published_stories(limit=10) == []


def test_content_version_changes_after_a_write(storage: Storage) -> None:
    (feed_id,) = feed_ids(storage, WIRE)
    empty = storage.content_version()
    first = add(storage, new_article(feed_id, "a1"))
    one = storage.content_version()
    add(storage, new_article(feed_id, "a2"), Assignment("story-a1", "url", 1.0, first))
    joined = storage.content_version()
    assert len({empty, one, joined}) == 3
    assert storage.content_version() == joined  # reading changes nothing


def test_new_article_helper_covers_every_field() -> None:
    # If NewArticle grows a field, new_article() must learn it (and so must the schema).
    assert {f.name for f in dataclasses.fields(NewArticle)} == set(vars(new_article(1, "x")).keys())


def test_migration_7_recomputes_fingerprints_from_the_stored_text(storage: Storage) -> None:
    from aggregator.cluster.duplicates import fingerprint
    from aggregator.storage.migrations import m007_numpy_minhash

    [feed] = feed_ids(storage, WIRE)
    text = " ".join(f"Brigade {n} moved its howitzers to the northern range." for n in range(9))
    add(storage, new_article(feed, "a", text=text, signature=b"stale", bands=("0:stale",)))
    add(storage, new_article(feed, "short", text="Too short to compare."))
    with storage.transaction():
        m007_numpy_minhash(storage.db)
    expected = fingerprint(text)
    assert expected is not None
    rows = {row["entry_key"]: row for row in storage.db.query("SELECT * FROM articles")}
    assert rows["a"]["signature"] == expected.signature and rows["short"]["signature"] is None
    bands = {row["band_key"] for row in storage.db.query("SELECT band_key FROM article_bands")}
    assert bands == set(expected.bands)


def test_the_frozen_minhash_of_migration_7_matches_the_live_one_today() -> None:
    # If this fails, the live fingerprint changed: stored signatures no longer match new
    # ones, so add a migration (with its own frozen copy) that recomputes them.
    from aggregator.cluster.duplicates import fingerprint
    from aggregator.storage.m007_minhash import fingerprint_v1

    for words in (3, 30, 400):
        text = " ".join(
            f"Frigate {n} left Kelvik harbour for the northern range" for n in range(words)
        )
        live = fingerprint(text)
        frozen = fingerprint_v1(text)
        assert (live.signature, live.bands) == frozen if live else frozen is None


def test_sqlite_errors_leave_storage_as_storage_error_naming_the_file(storage: Storage) -> None:
    import sqlite3

    storage.db.execute("ALTER TABLE articles RENAME TO articles_gone")
    with pytest.raises(StorageError, match="no such table: articles: .*test.db") as raised:
        storage.counts()
    assert isinstance(raised.value.__cause__, sqlite3.Error)
    storage.db.execute("ALTER TABLE articles_gone RENAME TO articles")
    # A failure inside a unit of work rolls it back and says the same.
    storage.db.execute(
        "CREATE TRIGGER no_feeds BEFORE INSERT ON feeds BEGIN SELECT RAISE(ABORT, 'no room'); END"
    )
    with pytest.raises(StorageError, match="no room: .*test.db"):
        storage.sync_feeds([FeedSource(url="https://wire.example/feed")], NOW)
    assert storage.feed_health() == []


def test_migration_8_stems_an_existing_search_index(tmp_path: Path) -> None:
    # Issue 17: the FTS table made by m002 (no stemming) is rebuilt with porter, and the
    # articles already stored are found by any form of their words.
    older = Storage.open(tmp_path / "old.db", migrate=False)
    try:
        from aggregator.storage.migrations import migrations

        migrations.apply(older.db, stop_before="m008_stemmed_search")
        older.sync_feeds([WIRE], NOW)
        older.db.execute(
            "INSERT INTO stories (id, created_at, published_at, updated_at) VALUES (?, ?, ?, ?)",
            ["s1", NOW.isoformat(), NOW.isoformat(), NOW.isoformat()],
        )
        older.db.execute(
            "INSERT INTO articles (feed_id, entry_key, url, canonical_url, title, text,"
            " fetched_at, extraction_status, story_id, method)"
            " VALUES (1, 'k', 'https://w.test/a', 'https://w.test/a', 'Frigates launched',"
            " 'Two hulls.', ?, 'extracted', 's1', 'new')",
            [NOW.isoformat()],
        )

        def matches(word: str) -> int:
            sql = "SELECT count(*) FROM article_search WHERE article_search MATCH ?"
            return int(older.db.execute(sql, [f'"{word}"']).fetchone()[0])

        assert (matches("frigates"), matches("frigate")) == (1, 0)
        assert older.migrate()[0] == "m008_stemmed_search"
        assert (matches("frigates"), matches("frigate"), matches("launch")) == (1, 1, 1)
        older.db.execute("INSERT INTO article_search (article_search) VALUES ('integrity-check')")
    finally:
        older.close()


def test_migration_9_unties_related_reports_and_drops_the_old_centroids(tmp_path: Path) -> None:
    # Issue 15: m004 marked related coverage as a copy of what it matched, which would
    # tie those reports together in every refinement; old centroids meant something else.
    older = Storage.open(tmp_path / "old.db", migrate=False)
    try:
        from aggregator.storage.migrations import migrations

        migrations.apply(older.db, stop_before="m009_refinement")
        older.sync_feeds([WIRE], NOW)
        older.db.execute(
            "INSERT INTO stories (id, created_at, published_at, updated_at, centroid_norm)"
            " VALUES ('s1', ?, ?, ?, 2.5)",
            [NOW.isoformat()] * 3,
        )
        older.db.execute("INSERT INTO story_terms VALUES ('s1', 'frigate', 1.0)")
        for key, method, copy_of in (("a", "new", None), ("b", "related", 1), ("c", "url", 1)):
            older.db.execute(
                "INSERT INTO articles (feed_id, entry_key, url, canonical_url, title, text,"
                " fetched_at, extraction_status, story_id, method, copy_of)"
                " VALUES (1, ?, ?, ?, 't', 'x', ?, 'extracted', 's1', ?, ?)",
                [key, f"https://w.test/{key}", f"https://w.test/{key}", NOW.isoformat(),
                 method, copy_of],
            )  # fmt: skip
        assert older.migrate() == [
            "m009_refinement",
            "m010_stored_terms",
            "m011_indexes_at_scale",
            "m012_search_queue",
        ]
        copies = dict(older.db.execute("SELECT entry_key, copy_of FROM articles").fetchall())
        assert copies == {"a": None, "b": None, "c": 1}
        # the old centroid is gone (m010 moved what was left of story_terms: nothing)
        assert older.db.execute("SELECT centroid, centroid_norm FROM stories").fetchone() == (
            None,
            0,
        )
    finally:
        older.close()


def test_migration_10_moves_story_centroids_into_one_value_and_marks_articles_counted(
    tmp_path: Path,
) -> None:
    # Issue 18: a story's summed vectors become one value (stories.centroid) and
    # articles stored before were counted in the document frequencies when stored.
    older = Storage.open(tmp_path / "old.db", migrate=False)
    try:
        from aggregator.storage.migrations import migrations

        migrations.apply(older.db, stop_before="m010_stored_terms")
        older.sync_feeds([WIRE], NOW)
        older.db.execute(
            "INSERT INTO stories (id, created_at, published_at, updated_at, centroid_norm)"
            " VALUES ('s1', ?, ?, ?, 1.25)",
            [NOW.isoformat()] * 3,
        )
        older.db.execute(
            "INSERT INTO articles (feed_id, entry_key, url, canonical_url, title, text,"
            " fetched_at, extraction_status, story_id, method)"
            " VALUES (1, 'a', 'https://w.test/a', 'https://w.test/a', 't', 'x', ?,"
            " 'extracted', 's1', 'new')",
            [NOW.isoformat()],
        )
        older.db.conn.executemany(
            "INSERT INTO story_terms VALUES ('s1', ?, ?)", [("frigate", 0.75), ("kelvik", 1.0)]
        )
        assert older.migrate() == [
            "m010_stored_terms",
            "m011_indexes_at_scale",
            "m012_search_queue",
        ]
        assert older.story_centroid("s1") == {"frigate": 0.75, "kelvik": 1.0}
        assert older.db.execute("SELECT terms FROM articles").fetchone() == (None,)
        assert older.uncounted_articles() == []
        tables = {row[0] for row in older.db.execute("SELECT name FROM sqlite_master")}
        assert "story_terms" not in tables
    finally:
        older.close()


def test_hot_statements_read_indexes_not_every_row(tmp_path: Path) -> None:
    # Issues 15 and 18: at 20,000 articles a refinement merge that scanned every story
    # (each row holds a few KB of centroid) cost 28 ms, 4,000 times per refresh; the
    # placement and the feeds' cache key read whole rows where an index answers.
    storage = Storage.open(tmp_path / "plans.db")
    try:
        (feed_id,) = feed_ids(storage, WIRE)
        for n in range(3):
            storage.add_article(new_article(feed_id, f"k{n}"), Assignment(None, "new"), f"s{n}")
        statements: list[str] = []
        storage.db.conn.set_trace_callback(statements.append)
        with storage.transaction():
            storage.open_story_candidates(["frigate", "kelvik"], since=NOW - HOUR, limit=10)
            storage.story_profiles(["s0", "s1"], ["frigate"])
            storage.move_story_members("s1", "s0")
            storage.story_aliases("s0")
        storage.content_version()
        storage.db.conn.set_trace_callback(None)
        full_scans = [
            (statement, detail)
            for statement in statements
            if statement.split()[0].upper() in {"SELECT", "UPDATE", "DELETE"}
            for *_, detail in storage.db.conn.execute(f"EXPLAIN QUERY PLAN {statement}")
            if detail.startswith("SCAN")
            and "COVERING INDEX" not in detail
            and detail != "SCAN feeds"  # the admin's list of feeds: tens of rows
        ]
        assert full_scans == []
    finally:
        storage.close()
