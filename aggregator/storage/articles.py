"""The articles half of Storage: storing a new article into its story, edited
entries, pages extracted once and reused, and near-duplicate candidates.

Mixed into ``Storage``, so callers still see one door.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aggregator.models import Assignment, Candidate, EntryChange, NewArticle, StoredPage
from aggregator.packed_terms import pack_terms
from aggregator.storage.sql import SqlDoor, iso

# Near-duplicate candidates compared per new article, at most (those sharing most bands).
MAX_BAND_CANDIDATES = 50
# Methods by which an article joins as a copy of another (not independent coverage).
COPY_METHODS = frozenset({"url", "guid", "near-duplicate"})
# NewArticle's fields stored otherwise (bands, dates, packed terms) or not at all (the
# background shares, read once to weigh the terms).
_NOT_COLUMNS = frozenset(
    {"bands", "published_at", "fetched_at", "terms", "packed_terms", "background"}
)
# Extracted text at least this long counts as complete when choosing a story's lead.
COMPLETE_TEXT_CHARS = 1000


def entry_digest(title: str, summary: str, content: str) -> str:
    """What identifies an entry's visible content: a change means an edited entry."""
    payload = "\x1f".join((title, summary, content)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()[:32]


class ArticleStorage(SqlDoor):
    """Mixed into Storage."""

    def entry_digests(self, feed_id: int, keys: Iterable[str]) -> dict[str, str | None]:
        """The stored entries among ``keys`` with their content digest (None: not yet known)."""
        wanted = list(keys)
        found: dict[str, str | None] = {}
        # Chunks stay under SQLite's bound-variable limit on old builds (999).
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            rows = self._query(
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
            self._query(
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
        rows = self._query(
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
        created = assignment.story_id is None and self._create_story(story_id, article)
        article_id = self._insert_article(article, assignment, story_id)
        # counted in memory by the caller; flush_frequencies writes it and drops the row
        self.db.execute("INSERT INTO uncounted_articles (article_id) VALUES (?)", [article_id])
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO article_bands (band_key, article_id) VALUES (?, ?)",
            [(band, article_id) for band in article.bands],
        )
        if created:  # its only member: dated by _create_story already, and its lead
            self.db.execute(
                "UPDATE stories SET lead_article_id = ? WHERE id = ?", [article_id, story_id]
            )
        else:
            self.refresh_story(story_id, article.fetched_at)
        return article_id

    def index_for_search(self) -> int:
        """Add the articles stored since the last call to the search index (``?q=``) in
        one transaction (call outside one), and return how many. Until then they are
        stored but not found by a search: a refresh calls this at its end, and every
        so many articles (migration m012 says why)."""
        with self.transaction():
            queued = self.db.conn.execute("SELECT COUNT(*) FROM unindexed_articles").fetchone()
            if queued[0]:
                self.db.conn.execute(
                    "INSERT INTO article_search (rowid, title, text)"
                    " SELECT a.id, a.title, a.text FROM unindexed_articles u"
                    " JOIN articles a ON a.id = u.article_id ORDER BY a.id"
                )
                self.db.conn.execute("DELETE FROM unindexed_articles")
        return int(queued[0])

    def _create_story(self, story_id: str, article: NewArticle) -> bool:
        """A story for ``article`` alone, dated as ``refresh_story`` would date it with
        that one member; False if a story has this id already (it joins that one)."""
        moment = iso(article.published_at or article.fetched_at)
        fetched = iso(article.fetched_at)
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO stories"
            " (id, created_at, published_at, updated_at, last_member_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [story_id, fetched, moment, max(moment, fetched), moment],
        )
        return cursor.rowcount == 1

    def _insert_article(self, article: NewArticle, assignment: Assignment, story_id: str) -> int:
        values = {key: value for key, value in vars(article).items() if key not in _NOT_COLUMNS}
        packed = article.packed_terms
        if packed is None and article.terms is not None:
            packed = pack_terms(article.terms)
        values.update(
            terms=packed,
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
