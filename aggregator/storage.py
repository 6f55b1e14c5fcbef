"""Storage: the one door to the database. All SQL of the service lives here.

SQLite through sqlite-utils, in WAL mode so the HTTP server and CLI read while the
scheduler writes. Each unit of work (one feed's refresh) is one transaction: a crash
leaves either all of it or none of it. Timestamps are ISO 8601 UTC strings
(``2026-11-24T09:30:00+00:00``), which sort as text.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from aggregator.clusterer import Assignment, Candidate
from aggregator.config import FeedSource
from aggregator.errors import StorageError
from aggregator.migrations import migrations
from aggregator.models import PageCursor, PublishedStory, StoryFilter, StorySource
from aggregator.storage_retention import RetentionStorage
from aggregator.storage_sql import from_iso, iso
from aggregator.storage_stories import StoryIndexStorage

BUSY_TIMEOUT_MS = 10_000
# A story with what publishing needs of its lead article (``s`` and ``a``).
_STORY_WITH_LEAD = """
    SELECT s.id, s.published_at, s.updated_at, s.lead_article_id,
           a.title, a.url, a.text, a.html, a.summary, a.author, a.image
    FROM stories s JOIN articles a ON a.id = s.lead_article_id"""
# Near-duplicate candidates compared per new article, at most (those sharing most bands).
MAX_BAND_CANDIDATES = 50
# Methods by which an article joins as a copy of another (not independent coverage).
COPY_METHODS = frozenset({"url", "guid", "near-duplicate"})
# Extracted text at least this long counts as complete when choosing a story's lead.
COMPLETE_TEXT_CHARS = 1000


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
    content_hash: str | None = None  # sha256 of the last full body
    body_bytes: int | None = None  # its size: what each 304 saves
    ttl_seconds: int | None = None  # the feed's own <ttl>, remembered across 304s
    disabled_reason: str | None = None  # set on 410 Gone; cleared by reset_feed


def entry_digest(title: str, summary: str, content: str) -> str:
    """What identifies an entry's visible content: a change means an edited entry."""
    payload = "\x1f".join((title, summary, content)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()[:32]


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
    extraction_step: str | None = None  # the chain step that gave the text (extractor.STEP_*)
    language: str | None = None  # ISO 639-1


@dataclass(frozen=True)
class BodyFacts:
    """What is remembered of a full feed body, to skip the next identical one."""

    content_hash: str
    size: int
    ttl_seconds: int | None = None


@dataclass(frozen=True)
class EntryChange:
    """An edited entry's new title and feed text (and the body made from it)."""

    title: str
    summary: str
    feed_content: str
    digest: str
    text: str
    html: str
    changed_at: datetime


@dataclass(frozen=True)
class StoredPage:
    """An already extracted page, reused when another feed links the same URL."""

    text: str
    html: str
    image: str | None
    author: str | None
    extraction_status: str
    extraction_step: str | None = None
    language: str | None = None


class Storage(StoryIndexStorage, RetentionStorage):
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
            # Only takes on a new file (before any table): pruned pages can then be
            # given back cheaply. Older files are converted by `aggregator prune`.
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.enable_wal()
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: no corruption on crash
            # 32 MB of page cache: the story index is read on every new article.
            db.execute("PRAGMA cache_size = -32000")
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
            INSERT INTO feeds (url, name, tags, enabled, priority, next_check_at, created_at)
            VALUES (:url, :name, :tags, :enabled, :priority, :now, :now)
            ON CONFLICT (url) DO UPDATE SET
                name = excluded.name, tags = excluded.tags, enabled = excluded.enabled,
                priority = excluded.priority
            """,
            {
                "url": source.url,
                "name": source.display_name,
                "tags": json.dumps(list(source.tags)),
                "enabled": int(source.enabled),
                "priority": source.priority,
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
            content_hash=row["content_hash"],
            body_bytes=row["body_bytes"],
            ttl_seconds=row["ttl_seconds"],
            disabled_reason=row["disabled_reason"],
        )

    def due_feed_urls(self, now: datetime) -> list[str]:
        """Enabled feeds whose next check time has come, the longest-waiting first."""
        rows = self.db.query(
            """
            SELECT url FROM feeds
            WHERE enabled = 1 AND disabled_reason IS NULL
              AND (next_check_at IS NULL OR next_check_at <= ?)
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
        body: BodyFacts | None = None,
        bytes_saved: int = 0,
    ) -> None:
        """Record a 200 (``body`` set) or a 304 (``bytes_saved``: the body not sent)."""
        self.db.execute(
            """
            UPDATE feeds SET
                last_attempt_at = :now, last_success_at = :now, last_status = :status,
                last_error = NULL, consecutive_failures = 0, next_check_at = :next,
                etag = COALESCE(:etag, etag),
                last_modified = COALESCE(:last_modified, last_modified),
                title = COALESCE(:title, title), site_url = COALESCE(:site_url, site_url),
                permanent_url = COALESCE(:permanent_url, permanent_url),
                content_hash = CASE WHEN :full THEN :hash ELSE content_hash END,
                body_bytes = CASE WHEN :full THEN :size ELSE body_bytes END,
                ttl_seconds = CASE WHEN :full THEN :ttl ELSE ttl_seconds END,
                bytes_saved = bytes_saved + :saved,
                not_modified_count = not_modified_count + (:status = 304)
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
                "full": body is not None,
                "hash": body.content_hash if body else None,
                "size": body.size if body else None,
                "ttl": body.ttl_seconds if body else None,
                "saved": bytes_saved,
            },
        )

    def record_fetch_failure(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check: datetime | None,
        error: str,
        status: int | None,
        disabled_reason: str | None = None,
    ) -> None:
        """Record a failed fetch; ``disabled_reason`` stops polling until reset_feed."""
        with self.transaction():
            self.db.execute(
                """
                UPDATE feeds SET
                    last_attempt_at = ?, last_error = ?, last_status = ?,
                    consecutive_failures = consecutive_failures + 1, next_check_at = ?,
                    disabled_reason = COALESCE(?, disabled_reason)
                WHERE id = ?
                """,
                [
                    iso(now),
                    error,
                    status,
                    iso(next_check) if next_check else None,
                    disabled_reason,
                    feed_id,
                ],
            )

    def bring_forward(self, url: str, latest: datetime) -> None:
        """Make a feed due no later than ``latest`` (its interval was shortened live)."""
        self.db.execute(
            "UPDATE feeds SET next_check_at = ? WHERE url = ? AND next_check_at > ?",
            [iso(latest), url, iso(latest)],
        )

    def reset_feed(self, url_or_name: str, now: datetime) -> list[str]:
        """Forget a feed's failures, its 410 and its recorded move; make it due now.

        Matches the feed's URL or (case-insensitively) its name; returns the URLs reset.
        """
        with self.transaction():
            rows = list(
                self.db.query(
                    "SELECT id, url FROM feeds WHERE url = ? OR lower(name) = lower(?)",
                    [url_or_name, url_or_name],
                )
            )
            for row in rows:
                self.db.execute(
                    """
                    UPDATE feeds SET disabled_reason = NULL, consecutive_failures = 0,
                        last_error = NULL, permanent_url = NULL, next_check_at = ?
                    WHERE id = ?
                    """,
                    [iso(now), row["id"]],
                )
        return [row["url"] for row in rows]

    def feed_health(self) -> list[dict[str, Any]]:
        """One row per feed, for `aggregator feeds` and /healthz."""
        return list(
            self.db.query(
                """
                SELECT f.name, f.url, f.enabled, f.last_status, f.last_attempt_at,
                       f.last_success_at, f.last_error, f.consecutive_failures,
                       f.next_check_at, f.permanent_url, f.disabled_reason, f.bytes_saved,
                       f.not_modified_count,
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

    def entry_digests(self, feed_id: int, keys: Iterable[str]) -> dict[str, str | None]:
        """The stored entries among ``keys`` with their content digest (None: not yet known)."""
        wanted = list(keys)
        found: dict[str, str | None] = {}
        # Chunks stay under SQLite's bound-variable limit on old builds (999).
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            rows = self.db.query(
                f"SELECT entry_key, entry_hash FROM articles WHERE feed_id = ?"
                f" AND entry_key IN ({','.join('?' * len(chunk))})",
                [feed_id, *chunk],
            )
            found.update((row["entry_key"], row["entry_hash"]) for row in rows)
        return found

    def set_entry_digest(self, feed_id: int, entry_key: str, digest: str) -> None:
        """Remember a digest for an entry stored before digests existed (no change)."""
        self.db.execute(
            "UPDATE articles SET entry_hash = ? WHERE feed_id = ? AND entry_key = ?",
            [digest, feed_id, entry_key],
        )

    def update_entry(self, feed_id: int, entry_key: str, change: EntryChange) -> None:
        """Update an edited entry in place and move its story's updated date.

        The page text stays when it came from the page (``extraction_status`` is
        'extracted'): pages are never fetched twice. A body that came from the feed
        follows the feed's new text. Call inside ``transaction()``.
        """
        row = self._one(
            "SELECT id, story_id, extraction_status FROM articles"
            " WHERE feed_id = ? AND entry_key = ?",
            [feed_id, entry_key],
        )
        if row is None:
            return
        from_feed = row["extraction_status"] != "extracted" and bool(change.text)
        self.db.execute(
            """
            UPDATE articles SET title = :title, summary = :summary,
                feed_content = :content, entry_hash = :hash,
                text = CASE WHEN :from_feed THEN :text ELSE text END,
                html = CASE WHEN :from_feed THEN :html ELSE html END
            WHERE id = :id
            """,
            {
                "id": row["id"],
                "title": change.title,
                "summary": change.summary,
                "content": change.feed_content,
                "hash": change.digest,
                "from_feed": from_feed,
                "text": change.text,
                "html": change.html,
            },
        )
        self.db.execute(
            "UPDATE stories SET updated_at = MAX(updated_at, ?) WHERE id = ?",
            [iso(change.changed_at), row["story_id"]],
        )

    def stored_page(self, canonical_url: str) -> StoredPage | None:
        """A page another feed already led us to extract: never fetch it twice."""
        row = self._one(
            """
            SELECT text, html, image, author, extraction_status, extraction_step, language
            FROM articles
            WHERE canonical_url = ? AND extraction_status = 'extracted'
            ORDER BY id LIMIT 1
            """,
            [canonical_url],
        )
        return StoredPage(**row) if row else None

    def articles_at(self, url: str, canonical_url: str) -> list[dict[str, Any]]:
        """Every stored article at this URL (any feed): how its text was obtained."""
        return list(
            self.db.query(
                """
                SELECT articles.id, articles.url, articles.title, feeds.name AS feed,
                       articles.extraction_status, articles.extraction_step,
                       articles.extraction_note, articles.language, articles.published_at,
                       articles.fetched_at, articles.story_id, length(articles.text) AS chars
                FROM articles JOIN feeds ON feeds.id = articles.feed_id
                WHERE articles.url = ? OR articles.canonical_url = ?
                ORDER BY articles.id
                """,
                [url, canonical_url],
            )
        )

    def duplicate_candidates(
        self, *, canonical_url: str, guid: str | None, bands: Sequence[str], since: datetime
    ) -> list[Candidate]:
        """Stored articles sharing the URL, the guid or an LSH band with a new one."""
        band_list = list(bands)
        # Only the articles sharing the most bands are compared: a feed of near-identical
        # bodies must not make each new article cost one comparison per stored copy.
        band_clause = (
            f"""OR id IN (SELECT article_id FROM article_bands
                          WHERE band_key IN ({",".join("?" * len(band_list))})
                          GROUP BY article_id ORDER BY COUNT(*) DESC, article_id DESC
                          LIMIT {MAX_BAND_CANDIDATES})"""
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
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)",
            [(band, article_id) for band in article.bands],
        )
        self.refresh_story(story_id, article.fetched_at)
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
            copy_of=self._copy_group_of(assignment),
            entry_hash=entry_digest(article.title, article.summary, article.feed_content),
        )
        columns = ", ".join(values)
        placeholders = ", ".join(f":{key}" for key in values)
        cursor = self.db.execute(
            f"INSERT INTO articles ({columns}) VALUES ({placeholders})", values
        )
        return int(cursor.lastrowid or 0)

    def _copy_group_of(self, assignment: Assignment) -> int | None:
        """The first article of the copy group a duplicate joins (None: independent)."""
        if assignment.method not in COPY_METHODS or assignment.matched_article_id is None:
            return None
        row = self._one(
            "SELECT COALESCE(copy_of, id) AS root FROM articles WHERE id = ?",
            [assignment.matched_article_id],
        )
        return int(row["root"]) if row else None

    def refresh_story(self, story_id: str, now: datetime) -> None:
        """Re-pick the lead and move the story's dates after a member joined or left.

        The lead: the feed with the highest ``priority``, then an extracted page over
        the feed's own text, then the more complete text, then the earliest published.
        """
        lead = self._one(
            f"""
            SELECT a.id FROM articles a JOIN feeds f ON f.id = a.feed_id
            WHERE a.story_id = ?
            ORDER BY f.priority DESC, a.extraction_status = 'extracted' DESC,
                     length(a.text) >= {COMPLETE_TEXT_CHARS} DESC,
                     COALESCE(a.published_at, a.fetched_at), a.id
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
                                  FROM articles WHERE story_id = :id)),
                last_member_at = (SELECT MAX(COALESCE(published_at, fetched_at))
                                  FROM articles WHERE story_id = :id)
            WHERE id = :id
            """,
            {"id": story_id, "lead": lead["id"] if lead else None, "now": iso(now)},
        )

    # -- publishing --------------------------------------------------------------

    def data_version(self) -> int:
        """SQLite's counter of commits made by *other* connections: a cheap "did
        anything change since I last looked" check before the real one."""
        # Asked on every feed request: the raw cursor, without sqlite-utils' row dicts.
        return int(self.db.conn.execute("PRAGMA data_version").fetchone()[0])

    def content_version(self) -> str:
        """Changes whenever anything published could have changed (cache key)."""
        row = self._one(
            "SELECT COUNT(*) AS n, MAX(updated_at) AS updated, MAX(rowid) AS last FROM stories"
        )
        articles = self._one("SELECT MAX(id) AS last FROM articles")
        # Feed names and tags are published too (sources list, categories, slices).
        feeds = self._one("SELECT group_concat(name || tags, char(31)) AS names FROM feeds")
        assert row is not None and articles is not None and feeds is not None
        names = hashlib.sha256((feeds["names"] or "").encode()).hexdigest()[:16]
        return f"{row['n']}-{row['updated']}-{row['last']}-{articles['last']}-{names}"

    def published_stories(
        self,
        limit: int,
        story_filter: StoryFilter | None = None,
        after: PageCursor | None = None,
    ) -> list[PublishedStory]:
        """The newest stories matching ``story_filter`` with all their sources, the lead
        first; with ``after``, the page of older stories that follows that story."""
        where, params = _story_conditions(story_filter or StoryFilter(), after)
        stories = list(
            self.db.query(
                f"""
                {_STORY_WITH_LEAD}
                {where}
                ORDER BY s.published_at DESC, s.id
                LIMIT :limit
                """,
                {**params, "limit": limit},
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
                   a.copy_of, a.extraction_step, a.language,
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
        relations = member_relations(members, lead_id)
        sources = tuple(
            StorySource(
                feed_name=member["feed_name"],
                title=member["title"],
                url=member["url"],
                published=from_iso(member["published_at"]),
                relation=relations[member["id"]],
                score=_member_score(member, members, lead_id),
                extraction_step=member["extraction_step"],
                language=member["language"],
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

    def published_story(self, story_id: str) -> PublishedStory | None:
        """One live story with all its sources, the lead first (for /stories/ID)."""
        story = self._one(
            f"""
            {_STORY_WITH_LEAD}
            WHERE s.id = ? AND s.merged_into IS NULL
            """,
            [story_id],
        )
        if story is None:
            return None
        return self._published_story(story, self._members_of([story_id]).get(story_id, []))

    def published_tags(self) -> list[str]:
        """Every tag a published story can carry (the enabled feeds' tags), sorted."""
        rows = self.db.query(
            "SELECT DISTINCT t.value AS tag FROM feeds f, json_each(f.tags) t"
            " WHERE f.enabled = 1 ORDER BY lower(t.value)"
        )
        return [row["tag"] for row in rows]

    def counts(self) -> dict[str, int]:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM feeds) AS feeds,"
            " (SELECT COUNT(*) FROM articles) AS articles,"
            " (SELECT COUNT(*) FROM stories WHERE merged_into IS NULL) AS stories"
        )
        assert row is not None
        return dict(row)

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(iter(self.db.query(sql, params)), None)


def _member_score(
    member: Mapping[str, Any], members: Sequence[Mapping[str, Any]], lead_id: int
) -> float | None:
    """The similarity that ties a member to the story. The article that started the
    story has none of its own; when another member leads, the lead's score (how it
    joined the starter's story) stands for both."""
    if member["id"] == lead_id:
        return None
    if member["method"] == "new":
        lead = next((m for m in members if m["id"] == lead_id), None)
        return lead["score"] if lead else None
    return member["score"]  # type: ignore[no-any-return]


def member_relations(members: Sequence[Mapping[str, Any]], lead_id: int) -> dict[int, str]:
    """Each member's relation to the story: the ``lead``; a ``duplicate`` (the same
    article as another member: the lead's copy group, or a copy itself); or
    ``related`` (an outlet's own, independent report of the event)."""
    lead_group = next(
        (member["copy_of"] or member["id"] for member in members if member["id"] == lead_id),
        lead_id,
    )
    relations = {}
    for member in members:
        group = member["copy_of"] or member["id"]
        if member["id"] == lead_id:
            relations[member["id"]] = "lead"
        elif member["copy_of"] is not None or group == lead_group:
            relations[member["id"]] = "duplicate"
        else:
            relations[member["id"]] = "related"
    return relations


def _summary(text: str, limit: int = 300) -> str:
    """The first paragraph of the body, cut at a word boundary."""
    first = text.strip().split("\n", 1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


# Longest search accepted and most words used from it: q= comes from strangers.
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 12
_WORD = re.compile(r"\w+")


def fts_query(text: str) -> str:
    """Turn free text into an FTS5 query that matches all its words.

    Each word is quoted, so FTS5 operators and syntax in the input (``NEAR``, ``*``,
    quotes, column filters) are taken as plain words and can never be a syntax error.
    """
    words = _WORD.findall(text[:MAX_QUERY_CHARS])[:MAX_QUERY_TERMS]
    return " ".join(f'"{word}"' for word in words)


def _story_conditions(
    story_filter: StoryFilter, after: PageCursor | None
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (over stories ``s``) and its parameters for one slice."""
    clauses: list[str] = ["s.merged_into IS NULL"]  # merged stories live on as aliases
    params: dict[str, Any] = {}
    if story_filter.tags:
        names = _bind_list(params, "tag", [tag.lower() for tag in story_filter.tags])
        clauses.append(
            "EXISTS (SELECT 1 FROM articles m JOIN feeds f ON f.id = m.feed_id,"
            f" json_each(f.tags) t WHERE m.story_id = s.id AND lower(t.value) IN ({names}))"
        )
    if story_filter.sources:
        names = _bind_list(params, "source", [name.lower() for name in story_filter.sources])
        clauses.append(
            "EXISTS (SELECT 1 FROM articles m JOIN feeds f ON f.id = m.feed_id"
            f" WHERE m.story_id = s.id AND lower(f.name) IN ({names}))"
        )
    if story_filter.min_sources > 1:
        params["min_sources"] = story_filter.min_sources
        clauses.append(
            "(SELECT COUNT(DISTINCT m.feed_id) FROM articles m WHERE m.story_id = s.id)"
            " >= :min_sources"
        )
    match = fts_query(story_filter.query)
    if match:
        params["match"] = match
        clauses.append(
            "s.id IN (SELECT m.story_id FROM article_search JOIN articles m"
            " ON m.id = article_search.rowid WHERE article_search MATCH :match)"
        )
    if after is not None:
        params.update(after_published=iso(after.published), after_id=after.story_id)
        clauses.append(
            "(s.published_at < :after_published"
            " OR (s.published_at = :after_published AND s.id > :after_id))"
        )
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _bind_list(params: dict[str, Any], prefix: str, values: Sequence[str]) -> str:
    """Add ``values`` as named parameters; return their placeholders for ``IN (...)``."""
    names = [f"{prefix}{index}" for index in range(len(values))]
    params.update(zip(names, values, strict=True))
    return ", ".join(f":{name}" for name in names)
