"""Storage: the one door to the database. All SQL of the service lives here.

SQLite through sqlite-utils, in WAL mode so the HTTP server and CLI read while the
scheduler writes. Each unit of work (one feed's refresh) is one transaction: a crash
leaves either all of it or none of it. Timestamps are ISO 8601 UTC strings
(``2026-11-24T09:30:00+00:00``), which sort as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from aggregator.clusterer import Assignment, Candidate
from aggregator.config import FeedSource
from aggregator.errors import StorageError
from aggregator.migrations import migrations
from aggregator.models import PublishedStory, StorySource

BUSY_TIMEOUT_MS = 10_000


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class FeedState:
    """What the pipeline needs to know about a feed before fetching it."""

    id: int
    url: str
    name: str
    etag: str | None
    last_modified: str | None
    consecutive_failures: int
    permanent_url: str | None = None


@dataclass(frozen=True)
class NewArticle:
    """An article ready to store: entry, chosen body and fingerprint."""

    feed_id: int
    entry_key: str
    guid: str | None
    url: str
    canonical_url: str
    title: str
    author: str | None
    summary: str
    feed_content: str
    text: str
    html: str
    image: str | None
    published_at: datetime | None
    fetched_at: datetime
    extraction_status: str
    extraction_note: str
    signature: bytes | None
    bands: tuple[str, ...]


@dataclass(frozen=True)
class StoredPage:
    """An already extracted page, reused when another feed links the same URL."""

    text: str
    html: str
    image: str | None
    author: str | None
    extraction_status: str


class Storage:
    """All reads and writes of the service's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
            db.enable_wal()
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: no corruption on crash
            storage = cls(db)
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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One unit of work: committed whole, or rolled back whole.

        An explicit BEGIN is needed: sqlite-utils 4 ``Database.execute`` commits any
        write that opened an implicit transaction, so ``with conn:`` alone would
        commit statement by statement. A nested call joins the outer unit of work.
        """
        connection = self.db.conn
        if connection.in_transaction:
            yield
            return
        # IMMEDIATE takes the write lock now, so a second writer waits (busy_timeout)
        # instead of failing later with "database is locked" on lock upgrade.
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    # -- feeds ---------------------------------------------------------------

    def sync_feeds(self, sources: Sequence[FeedSource], now: datetime) -> None:
        """Make the feeds table match feeds.yaml (feeds removed from it are disabled)."""
        with self.transaction():
            listed = {source.url for source in sources}
            for source in sources:
                self._upsert_feed(source, now)
            for row in self.db.query("SELECT id, url FROM feeds WHERE enabled = 1"):
                if row["url"] not in listed:
                    self.db.execute("UPDATE feeds SET enabled = 0 WHERE id = ?", [row["id"]])

    def _upsert_feed(self, source: FeedSource, now: datetime) -> None:
        self.db.execute(
            """
            INSERT INTO feeds (url, name, tags, enabled, next_check_at, created_at)
            VALUES (:url, :name, :tags, :enabled, :now, :now)
            ON CONFLICT (url) DO UPDATE SET
                name = excluded.name, tags = excluded.tags, enabled = excluded.enabled
            """,
            {
                "url": source.url,
                "name": source.display_name,
                "tags": json.dumps(list(source.tags)),
                "enabled": int(source.enabled),
                "now": iso(now),
            },
        )

    def feed_state(self, url: str) -> FeedState:
        row = self._one("SELECT * FROM feeds WHERE url = ?", [url])
        if row is None:
            raise StorageError(f"feed not in database: {url}")
        return FeedState(
            id=row["id"],
            url=row["url"],
            name=row["name"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            consecutive_failures=row["consecutive_failures"],
            permanent_url=row["permanent_url"],
        )

    def due_feed_urls(self, now: datetime) -> list[str]:
        """Enabled feeds whose next check time has come, the longest-waiting first."""
        rows = self.db.query(
            """
            SELECT url FROM feeds
            WHERE enabled = 1 AND (next_check_at IS NULL OR next_check_at <= ?)
            ORDER BY next_check_at
            """,
            [iso(now)],
        )
        return [row["url"] for row in rows]

    def record_fetch_success(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check: datetime,
        status: int,
        etag: str | None,
        last_modified: str | None,
        title: str | None = None,
        site_url: str | None = None,
        permanent_url: str | None = None,
    ) -> None:
        self.db.execute(
            """
            UPDATE feeds SET
                last_attempt_at = :now, last_success_at = :now, last_status = :status,
                last_error = NULL, consecutive_failures = 0, next_check_at = :next,
                etag = COALESCE(:etag, etag),
                last_modified = COALESCE(:last_modified, last_modified),
                title = COALESCE(:title, title), site_url = COALESCE(:site_url, site_url),
                permanent_url = COALESCE(:permanent_url, permanent_url)
            WHERE id = :id
            """,
            {
                "id": feed_id,
                "now": iso(now),
                "next": iso(next_check),
                "status": status,
                "etag": etag,
                "last_modified": last_modified,
                "title": title,
                "site_url": site_url,
                "permanent_url": permanent_url,
            },
        )

    def record_fetch_failure(
        self, feed_id: int, *, now: datetime, next_check: datetime, error: str, status: int | None
    ) -> None:
        with self.transaction():
            self.db.execute(
                """
                UPDATE feeds SET
                    last_attempt_at = ?, last_error = ?, last_status = ?,
                    consecutive_failures = consecutive_failures + 1, next_check_at = ?
                WHERE id = ?
                """,
                [iso(now), error, status, iso(next_check), feed_id],
            )

    def feed_health(self) -> list[dict[str, Any]]:
        """One row per feed, for `aggregator feeds` and /healthz."""
        return list(
            self.db.query(
                """
                SELECT f.name, f.url, f.enabled, f.last_status, f.last_attempt_at,
                       f.last_success_at, f.last_error, f.consecutive_failures,
                       f.next_check_at, f.permanent_url,
                       (SELECT count(*) FROM articles a WHERE a.feed_id = f.id) AS articles
                FROM feeds f ORDER BY f.name
                """
            )
        )

    # -- articles --------------------------------------------------------------

    def known_entry_keys(self, feed_id: int, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        if not wanted:
            return set()
        placeholders = ",".join("?" * len(wanted))
        rows = self.db.query(
            f"SELECT entry_key FROM articles WHERE feed_id = ? AND entry_key IN ({placeholders})",
            [feed_id, *wanted],
        )
        return {row["entry_key"] for row in rows}

    def stored_page(self, canonical_url: str) -> StoredPage | None:
        """A page another feed already led us to extract: never fetch it twice."""
        row = self._one(
            """
            SELECT text, html, image, author, extraction_status FROM articles
            WHERE canonical_url = ? AND extraction_status = 'extracted'
            ORDER BY id LIMIT 1
            """,
            [canonical_url],
        )
        return StoredPage(**row) if row else None

    def duplicate_candidates(
        self, *, canonical_url: str, guid: str | None, bands: Sequence[str], since: datetime
    ) -> list[Candidate]:
        """Stored articles sharing the URL, the guid or an LSH band with a new one."""
        band_list = list(bands)
        band_clause = (
            f"OR id IN (SELECT article_id FROM article_bands WHERE band_key IN "
            f"({','.join('?' * len(band_list))}))"
            if band_list
            else ""
        )
        rows = self.db.query(
            f"""
            SELECT id, story_id, canonical_url, guid, signature FROM articles
            WHERE (canonical_url = ? OR (guid IS NOT NULL AND guid = ?) {band_clause})
              AND fetched_at >= ?
            ORDER BY id
            """,
            [canonical_url, guid or "", *band_list, iso(since)],
        )
        return [
            Candidate(
                article_id=row["id"],
                story_id=row["story_id"],
                canonical_url=row["canonical_url"],
                guid=row["guid"],
                signature=row["signature"],
            )
            for row in rows
        ]

    def add_article(self, article: NewArticle, assignment: Assignment, new_story_id: str) -> int:
        """Store one article in its story (creating the story if the assignment says so).

        Call inside ``transaction()`` together with the feed's fetch state.
        """
        story_id = assignment.story_id or new_story_id
        if assignment.story_id is None:
            self._create_story(story_id, article)
        article_id = self._insert_article(article, assignment, story_id)
        for band in article.bands:
            self.db.execute(
                "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)",
                [band, article_id],
            )
        self._refresh_story(story_id, article.fetched_at)
        return article_id

    def _create_story(self, story_id: str, article: NewArticle) -> None:
        moment = iso(article.published_at or article.fetched_at)
        self.db.execute(
            "INSERT OR IGNORE INTO stories (id, created_at, published_at, updated_at)"
            " VALUES (?, ?, ?, ?)",
            [story_id, iso(article.fetched_at), moment, moment],
        )

    def _insert_article(self, article: NewArticle, assignment: Assignment, story_id: str) -> int:
        values = {
            key: value
            for key, value in vars(article).items()
            if key not in {"bands", "published_at", "fetched_at"}
        }
        values.update(
            published_at=iso(article.published_at) if article.published_at else None,
            fetched_at=iso(article.fetched_at),
            story_id=story_id,
            method=assignment.method,
            score=assignment.score,
            matched_article_id=assignment.matched_article_id,
        )
        columns = ", ".join(values)
        placeholders = ", ".join(f":{key}" for key in values)
        cursor = self.db.execute(
            f"INSERT INTO articles ({columns}) VALUES ({placeholders})", values
        )
        return int(cursor.lastrowid or 0)

    def _refresh_story(self, story_id: str, now: datetime) -> None:
        """Re-pick the lead and move the story's dates after a member joined."""
        lead = self._one(
            """
            SELECT id FROM articles WHERE story_id = ?
            ORDER BY extraction_status = 'extracted' DESC,
                     COALESCE(published_at, fetched_at), id
            LIMIT 1
            """,
            [story_id],
        )
        self.db.execute(
            """
            UPDATE stories SET
                lead_article_id = :lead,
                published_at = (SELECT MIN(COALESCE(published_at, fetched_at))
                                FROM articles WHERE story_id = :id),
                updated_at = MAX(updated_at, :now,
                                 (SELECT MAX(COALESCE(published_at, fetched_at))
                                  FROM articles WHERE story_id = :id))
            WHERE id = :id
            """,
            {"id": story_id, "lead": lead["id"] if lead else None, "now": iso(now)},
        )

    # -- publishing --------------------------------------------------------------

    def content_version(self) -> str:
        """Changes whenever anything published could have changed (cache key)."""
        row = self._one(
            "SELECT COUNT(*) AS n, MAX(updated_at) AS updated, MAX(rowid) AS last FROM stories"
        )
        articles = self._one("SELECT MAX(id) AS last FROM articles")
        assert row is not None and articles is not None
        return f"{row['n']}-{row['updated']}-{row['last']}-{articles['last']}"

    def published_stories(self, limit: int) -> list[PublishedStory]:
        """The newest stories with all their sources, the lead first."""
        stories = list(
            self.db.query(
                """
                SELECT s.id, s.published_at, s.updated_at, s.lead_article_id,
                       a.title, a.url, a.text, a.html, a.summary, a.author, a.image
                FROM stories s JOIN articles a ON a.id = s.lead_article_id
                ORDER BY s.published_at DESC, s.id
                LIMIT ?
                """,
                [limit],
            )
        )
        members = self._members_of([story["id"] for story in stories])
        return [self._published_story(story, members.get(story["id"], [])) for story in stories]

    def _members_of(self, story_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        if not story_ids:
            return grouped
        placeholders = ",".join("?" * len(story_ids))
        rows = self.db.query(
            f"""
            SELECT a.id, a.story_id, a.title, a.url, a.published_at, a.method, a.score,
                   f.name AS feed_name, f.tags AS feed_tags
            FROM articles a JOIN feeds f ON f.id = a.feed_id
            WHERE a.story_id IN ({placeholders})
            ORDER BY COALESCE(a.published_at, a.fetched_at), a.id
            """,
            story_ids,
        )
        for row in rows:
            grouped.setdefault(row["story_id"], []).append(row)
        return grouped

    @staticmethod
    def _published_story(story: dict[str, Any], members: list[dict[str, Any]]) -> PublishedStory:
        lead_id = story["lead_article_id"]
        ordered = sorted(members, key=lambda member: member["id"] != lead_id)
        sources = tuple(
            StorySource(
                feed_name=member["feed_name"],
                title=member["title"],
                url=member["url"],
                published=from_iso(member["published_at"]),
                relation="lead" if member["id"] == lead_id else "duplicate",
                score=member["score"] if member["id"] != lead_id else None,
            )
            for member in ordered
        )
        tags = sorted({tag for member in members for tag in json.loads(member["feed_tags"])})
        published = from_iso(story["published_at"])
        updated = from_iso(story["updated_at"])
        assert published is not None and updated is not None
        return PublishedStory(
            id=story["id"],
            title=story["title"],
            link=story["url"],
            content_html=story["html"],
            content_text=story["text"],
            summary=_summary(story["text"]),
            published=published,
            updated=updated,
            tags=tuple(tags),
            sources=sources,
            author=story["author"],
            image=story["image"],
        )

    def counts(self) -> dict[str, int]:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM feeds) AS feeds,"
            " (SELECT COUNT(*) FROM articles) AS articles,"
            " (SELECT COUNT(*) FROM stories) AS stories"
        )
        assert row is not None
        return dict(row)

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(iter(self.db.query(sql, params)), None)


def _summary(text: str, limit: int = 300) -> str:
    """The first paragraph of the body, cut at a word boundary."""
    first = text.strip().split("\n", 1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"
