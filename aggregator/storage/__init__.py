"""Storage: the one door to the database. All SQL of the service lives in this package.

``Storage`` inherits one mixin per concern, each in its own module:

| module | concern |
| --- | --- |
| ``articles`` | storing articles into stories, edited entries, reused pages, copy candidates |
| ``feeds`` | the feeds table, kept in step with feeds.yaml; each feed's fetch state and health |
| ``published`` | live stories as published, and the slices (tag, source, search, paging) |
| ``story_index`` | the clustering's index: centroids, merges, overrides |
| ``frequencies`` | the clustering's document frequencies, in memory with write-behind |
| ``retention`` | pruning aged-out stories, compacting, backups |
| ``sql`` | what they share: the unit of work, row helpers, the error translation |
| ``migrations`` | the schema, as versioned migrations |

SQLite through sqlite-utils, in WAL mode so the HTTP server and CLI read while the
scheduler writes. Each unit of work (one feed's refresh) is one transaction: a crash
leaves either all of it or none of it. Timestamps are ISO 8601 UTC strings
(``2026-11-24T09:30:00+00:00``), which sort as text. Nothing leaves this package as a
``sqlite3.Error``: every public method raises ``StorageError`` instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from aggregator.errors import StorageError
from aggregator.storage.articles import ArticleStorage, entry_digest
from aggregator.storage.feeds import FeedStorage
from aggregator.storage.frequencies import DocumentCounts, FrequencyStorage
from aggregator.storage.migrations import migrations
from aggregator.storage.published import PublishingStorage, fts_query, member_relations
from aggregator.storage.retention import RetentionStorage
from aggregator.storage.sql import raising_storage_errors
from aggregator.storage.story_index import StoryIndexStorage

__all__ = ["Storage", "entry_digest", "fts_query", "member_relations"]

BUSY_TIMEOUT_MS = 10_000
WAL_CHECKPOINT_PAGES = 16_000


@raising_storage_errors
class Storage(
    ArticleStorage,
    FeedStorage,
    PublishingStorage,
    StoryIndexStorage,
    FrequencyStorage,
    RetentionStorage,
):
    """All reads and writes of the service's database."""

    def __init__(self, db: Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path or Path(":memory:")  # named in errors, like "disk is full: PATH"
        self._counts = DocumentCounts()

    @classmethod
    def open(
        cls, path: str | Path, *, migrate: bool = True, check_same_thread: bool = True
    ) -> Storage:
        """Open (creating if needed) the database file and apply pending migrations.

        ``check_same_thread=False`` is for a connection handed to one other thread
        (the scheduler's job thread); never share one between threads at once.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=check_same_thread
            )
            db = Database(connection)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Only takes on a new file (before any table): pruned pages can then be
            # given back cheaply. Older files are converted by `aggregator prune`.
            # Set only there: on an existing file it takes the write lock, so a
            # reader opened mid-refresh waited for the writer (and failed on a full disk).
            if not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.enable_wal()
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: no corruption on crash
            # 32 MB of page cache: the story index is read on every new article.
            db.execute("PRAGMA cache_size = -32000")
            # Copy the write-ahead log into the database every 16,000 pages (64 MB; the
            # log's file stays that big), not SQLite's 1,000: a page many feeds'
            # transactions rewrite (the story index's keys, the copy candidates' bands)
            # is copied once per checkpoint (a refresh's commits cost a third less at
            # 4,000 than at 1,000; the large bench's storing 46-47 -> 42-46 s at 16,000).
            db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            storage = cls(db, path)
            if migrate:
                storage.migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        return storage

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        pending = [migration.name for migration in migrations.pending(self.db)]
        migrations.apply(self.db)
        return pending

    def close(self) -> None:
        self.db.close()
