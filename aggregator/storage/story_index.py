"""The story-index half of Storage: document frequencies, story centroids, the
inverted index of distinctive terms, merges, aliases and admin overrides.

Mixed into ``Storage``, so callers still see one door. Only SQL lives here: the
decisions are in cluster/events.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aggregator.models import StoryProfile
from aggregator.packed_terms import pack_terms, unpack_terms
from aggregator.storage.sql import SqlDoor, from_iso, iso, placeholders
from aggregator.storage.terms import with_terms_apart, with_terms_unpacked


class StoryIndexStorage(SqlDoor):
    """Mixed into Storage."""

    # -- candidates and centroids ---------------------------------------------------

    def open_story_candidates(
        self,
        terms: Sequence[str],
        *,
        since: datetime,
        limit: int,
        first_since: datetime | None = None,
    ) -> list[str]:
        """Open stories (not merged, a member since ``since``, the first one since
        ``first_since`` if given) that share the most of ``terms`` in their index keys:
        the only stories a new article is compared with."""
        if not terms:
            return []
        rows = self._rows(
            f"""
            SELECT k.story_id, COUNT(*) AS shared
            FROM story_keys k JOIN stories s ON s.id = k.story_id
            WHERE k.term IN ({placeholders(terms)})
              AND s.merged_into IS NULL AND s.last_member_at >= ?
              AND s.published_at >= ?
            GROUP BY k.story_id
            ORDER BY shared DESC, k.story_id
            LIMIT ?
            """,
            [*terms, iso(since), iso(first_since) if first_since else "", limit],
        )
        return [row["story_id"] for row in rows]

    def story_profiles(
        self, story_ids: Sequence[str], terms: Sequence[str]
    ) -> dict[str, StoryProfile]:
        """For each story: its summed report vectors at ``terms`` and how many
        independent reports (not copies) it holds."""
        if not story_ids:
            return {}
        rows = self.db.conn.execute(
            f"""
            SELECT s.id, s.centroid, (SELECT COUNT(*) FROM articles a
                                      WHERE a.story_id = s.id AND a.copy_of IS NULL)
            FROM stories s WHERE s.id IN ({placeholders(story_ids)})
            """,
            list(story_ids),
        ).fetchall()
        profiles = {}
        for story_id, stored, reports in rows:
            centroid = unpack_terms(stored) if stored else {}
            shared = {term: centroid[term] for term in terms if term in centroid}
            profiles[story_id] = StoryProfile(shared, reports)
        return profiles

    def story_centroid(self, story_id: str) -> dict[str, float]:
        """A story's summed report vectors (empty before its first is stored)."""
        row = self.db.conn.execute(
            "SELECT centroid FROM stories WHERE id = ?", [story_id]
        ).fetchone()
        return unpack_terms(row[0]) if row and row[0] else {}

    def save_story_profile(
        self, story_id: str, centroid: Mapping[str, float], keys: Sequence[str], norm: float
    ) -> None:
        """Replace a story's centroid, its index keys and its norm."""
        self.db.execute("DELETE FROM story_keys WHERE story_id = ?", [story_id])
        self.db.conn.executemany(
            "INSERT INTO story_keys (term, story_id) VALUES (?, ?)",
            [(term, story_id) for term in keys],
        )
        self.db.execute(
            "UPDATE stories SET centroid = ?, centroid_norm = ? WHERE id = ?",
            [pack_terms(centroid, compress=False), norm, story_id],
        )

    def update_story_profile(
        self,
        story_id: str,
        centroid: Mapping[str, float],
        keys: tuple[Sequence[str], Sequence[str]],
        norm: float,
    ) -> None:
        """``save_story_profile`` for a story whose index keys were ``keys[0]`` and are
        now ``keys[1]``: only the keys that changed are written (a story grows by one
        report at a time, on the path of every new article)."""
        old_keys, new_keys = set(keys[0]), set(keys[1])
        self.db.conn.executemany(
            "DELETE FROM story_keys WHERE term = ? AND story_id = ?",
            [(term, story_id) for term in old_keys - new_keys],
        )
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO story_keys (term, story_id) VALUES (?, ?)",
            [(term, story_id) for term in new_keys - old_keys],
        )
        self.db.execute(
            "UPDATE stories SET centroid = ?, centroid_norm = ? WHERE id = ?",
            [pack_terms(centroid, compress=False), norm, story_id],
        )

    # -- refinement of the open window -----------------------------------------------

    def open_story_reports(self, *, since: datetime, first_since: datetime) -> list[dict[str, Any]]:
        """Every article of the open stories (as ``open_story_candidates`` defines them),
        in arrival order, with its copy group (``unit``: the group's first article), its
        story's creation time and whether the story's summed vectors are stored
        (``centroid_norm`` 0: not yet, or dropped by a migration). Terms and text are
        read apart, for the reports only (``report_terms``)."""
        return self._rows(
            """
            SELECT a.id, a.story_id, COALESCE(a.copy_of, a.id) AS unit, a.canonical_url,
                   s.created_at, s.centroid_norm
            FROM articles a JOIN stories s ON s.id = a.story_id
            WHERE s.merged_into IS NULL AND s.last_member_at >= ? AND s.published_at >= ?
            ORDER BY a.id
            """,
            [iso(since), iso(first_since)],
        )

    def report_terms(
        self, article_ids: Sequence[int], *, apart: bool = False
    ) -> dict[int, dict[str, Any]]:
        """For each article: its stored terms (None for one stored before they were),
        and, for such an article only, its title and text. ``apart``: the terms as
        (terms, weights) in their stored order, not a dict."""
        unpacked = with_terms_apart if apart else with_terms_unpacked
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(article_ids), 500):
            chunk = list(article_ids[start : start + 500])
            for row in self._rows(
                # the text only where no terms are stored (articles from before m010)
                "SELECT id, terms, CASE WHEN terms IS NULL THEN title END AS title,"
                " CASE WHEN terms IS NULL THEN text END AS text"
                f" FROM articles WHERE id IN ({placeholders(chunk)})",
                chunk,
            ):
                found[row["id"]] = unpacked(row)
        return found

    def last_article_id(self) -> int:
        """The newest article's id (0 when there is none): what a refresh stores comes after."""
        row = self._one("SELECT MAX(id) AS id FROM articles")
        return int(row["id"] or 0) if row else 0

    def newest_article_moment(self, after_article_id: int) -> datetime | None:
        """The latest date (published, else fetched) of the articles after this id."""
        row = self._one(
            "SELECT MAX(COALESCE(published_at, fetched_at)) AS moment FROM articles WHERE id > ?",
            [after_article_id],
        )
        return from_iso(row["moment"]) if row else None

    def split_overrides(self) -> list[tuple[str, str]]:
        """(canonical URL, live story it was split out of) for every admin split."""
        rows = self._rows(
            "SELECT o.article_url, COALESCE(s.merged_into, s.id) AS story_id"
            " FROM story_overrides o JOIN stories s ON s.id = o.story_id WHERE o.action = 'split'"
        )
        return [(row["article_url"], row["story_id"]) for row in rows]

    def admin_merged_stories(self) -> set[str]:
        """Live stories that an admin merged something into."""
        rows = self._rows(
            "SELECT COALESCE(s.merged_into, s.id) AS story_id FROM story_overrides o"
            " JOIN stories s ON s.id = o.target_story_id WHERE o.action = 'merge'"
        )
        return {row["story_id"] for row in rows}

    def create_refined_story(self, story_id: str, now: datetime) -> None:
        """An empty story for a group the refinement found; ``refresh_story`` dates it
        once its articles have moved in."""
        self.db.execute(
            "INSERT INTO stories (id, created_at, published_at, updated_at) VALUES (?, ?, ?, ?)",
            [story_id, iso(now), iso(now), iso(now)],
        )

    def move_articles(self, article_ids: Sequence[int], story_id: str) -> None:
        """Put articles into another story (the refinement moved their report)."""
        for start in range(0, len(article_ids), 500):
            chunk = list(article_ids[start : start + 500])
            self.db.execute(
                f"UPDATE articles SET story_id = ? WHERE id IN ({placeholders(chunk)})",
                [story_id, *chunk],
            )

    def mark_refined(self, article_id: int, score: float | None) -> None:
        """Record that the refinement moved an independent report (for --explain)."""
        self.db.execute(
            "UPDATE articles SET method = 'refined', score = ? WHERE id = ?", [score, article_id]
        )

    def record_moves(
        self,
        article_ids: Sequence[int],
        from_story: str | None,
        to_story: str,
        kind: str,
        now: datetime,
        score: float | None = None,
    ) -> None:
        """Log that these articles moved between stories (``kind``: refined, split or
        merge), for ``stories --explain``."""
        self.db.conn.executemany(
            "INSERT INTO story_moves (article_id, from_story, to_story, kind, score, moved_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(article, from_story, to_story, kind, score, iso(now)) for article in article_ids],
        )

    def article_moves(self, article_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Each article's moves between stories, oldest first."""
        moves: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(article_ids), 500):
            chunk = list(article_ids[start : start + 500])
            for row in self._rows(
                f"SELECT article_id, from_story, to_story, kind, score, moved_at"
                f" FROM story_moves WHERE article_id IN ({placeholders(chunk)}) ORDER BY id",
                chunk,
            ):
                moves.setdefault(row["article_id"], []).append(row)
        return moves

    def story_article_ids(self, story_id: str) -> list[int]:
        rows = self._rows("SELECT id FROM articles WHERE story_id = ? ORDER BY id", [story_id])
        return [row["id"] for row in rows]

    # -- merges, aliases, overrides ----------------------------------------------------

    def story_created_at(self, story_ids: Sequence[str]) -> dict[str, str]:
        rows = self._rows(
            f"SELECT id, created_at FROM stories WHERE id IN ({placeholders(story_ids)})",
            list(story_ids),
        )
        return {row["id"]: row["created_at"] for row in rows}

    def move_story_members(self, absorbed: str, survivor: str) -> None:
        """Make ``absorbed`` an alias of ``survivor``: members, aliases and index move."""
        self.db.execute("UPDATE articles SET story_id = ? WHERE story_id = ?", [survivor, absorbed])
        # Two statements: with an OR, SQLite scans every story (and a story's row holds
        # its centroid, a few KB); each half has its index.
        self.db.execute("UPDATE stories SET merged_into = ? WHERE id = ?", [survivor, absorbed])
        self.db.execute(
            "UPDATE stories SET merged_into = ? WHERE merged_into = ?", [survivor, absorbed]
        )
        self.db.execute("UPDATE stories SET centroid = NULL WHERE id = ?", [absorbed])
        self.db.execute("DELETE FROM story_keys WHERE story_id = ?", [absorbed])

    def resolve_story_id(self, story_id: str) -> str | None:
        """The live story an id names: itself, or the story it was merged into."""
        rows = self._rows("SELECT id, merged_into FROM stories WHERE id = ?", [story_id])
        if not rows:
            return None
        return str(rows[0]["merged_into"] or rows[0]["id"])

    def story_aliases(self, story_id: str) -> list[str]:
        rows = self._rows("SELECT id FROM stories WHERE merged_into = ? ORDER BY id", [story_id])
        return [row["id"] for row in rows]

    def story_members(self, story_id: str) -> list[dict[str, Any]]:
        """Every article of a story with how and why it joined (for --explain)."""
        return self._rows(
            """
            SELECT a.id, a.title, a.url, a.canonical_url, a.published_at, a.method,
                   a.score, a.matched_article_id, a.copy_of, a.extraction_status,
                   f.name AS feed_name, f.priority
            FROM articles a JOIN feeds f ON f.id = a.feed_id
            WHERE a.story_id = ?
            ORDER BY COALESCE(a.published_at, a.fetched_at), a.id
            """,
            [story_id],
        )

    def story_row(self, story_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM stories WHERE id = ?", [story_id])
        return rows[0] if rows else None

    def recent_stories(self, limit: int) -> list[dict[str, Any]]:
        """Newest live stories with their lead title and member count (for `stories`)."""
        return self._rows(
            """
            SELECT s.id, s.published_at, s.updated_at, a.title,
                   (SELECT COUNT(*) FROM articles m WHERE m.story_id = s.id) AS members,
                   (SELECT COUNT(DISTINCT m.feed_id) FROM articles m
                    WHERE m.story_id = s.id) AS outlets
            FROM stories s LEFT JOIN articles a ON a.id = s.lead_article_id
            WHERE s.merged_into IS NULL
            ORDER BY s.published_at DESC, s.id
            LIMIT ?
            """,
            [limit],
        )

    def article_by_url(self, url: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM articles WHERE url = ? OR canonical_url = ? ORDER BY id LIMIT 1",
            [url, url],
        )
        return rows[0] if rows else None

    def detach_article(self, article_id: int, new_story_id: str, now: datetime) -> None:
        """Give one article a story of its own (an admin split)."""
        rows = self._rows(
            "SELECT COALESCE(published_at, fetched_at) AS moment FROM articles WHERE id = ?",
            [article_id],
        )
        moment = rows[0]["moment"]
        self.db.execute(
            "INSERT INTO stories (id, created_at, published_at, updated_at, last_member_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [new_story_id, iso(now), moment, moment, moment],
        )
        self.db.execute(
            "UPDATE articles SET story_id = ?, method = 'manual', score = NULL,"
            " matched_article_id = NULL, copy_of = NULL WHERE id = ?",
            [new_story_id, article_id],
        )

    def record_override(
        self,
        action: str,
        now: datetime,
        *,
        article_url: str | None = None,
        story_id: str | None = None,
        target_story_id: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO story_overrides (action, article_url, story_id, target_story_id,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            [action, article_url, story_id, target_story_id, iso(now)],
        )

    def split_urls_between(self, story_ids: Sequence[str]) -> set[str]:
        """Canonical URLs an admin split out of any of ``story_ids`` (or their aliases)."""
        if not story_ids:
            return set()
        rows = self._rows(
            f"""
            SELECT o.article_url FROM story_overrides o JOIN stories s ON s.id = o.story_id
            WHERE o.action = 'split'
              AND COALESCE(s.merged_into, s.id) IN ({placeholders(story_ids)})
            """,
            list(story_ids),
        )
        return {row["article_url"] for row in rows}

    def forget_splits(self, story_ids: Sequence[str]) -> None:
        """Drop split overrides between these stories (an admin merged them again)."""
        urls = set().union(*(self.story_urls(story) for story in story_ids))
        live = set(story_ids)
        for row in self._rows(
            "SELECT id, article_url, story_id FROM story_overrides WHERE action = 'split'"
        ):
            if (
                row["article_url"] in urls
                and (self.resolve_story_id(row["story_id"]) or "") in live
            ):
                self.db.execute("DELETE FROM story_overrides WHERE id = ?", [row["id"]])

    def split_url_story(self, canonical_url: str) -> str | None:
        """The story an admin split this URL out of, if any (it must not rejoin it)."""
        rows = self._rows(
            "SELECT story_id FROM story_overrides WHERE action = 'split' AND article_url = ?"
            " ORDER BY id DESC LIMIT 1",
            [canonical_url],
        )
        return rows[0]["story_id"] if rows else None

    def story_member_terms(self, story_id: str) -> list[dict[str, Any]]:
        """Every article of a story: id, whether it is counted in the document
        frequencies, stored terms (decoded, or None), title and text."""
        rows = self._rows(
            "SELECT a.id, u.article_id IS NULL AS counted, a.terms, a.title, a.text"
            " FROM articles a LEFT JOIN uncounted_articles u ON u.article_id = a.id"
            " WHERE a.story_id = ?",
            [story_id],
        )
        return [with_terms_unpacked(row) for row in rows]

    def story_report_terms(self, story_id: str) -> list[dict[str, Any]]:
        """A story's independent reports (copies left out): id, stored terms (decoded;
        None for an article stored before they were), title and text."""
        rows = self._rows(
            "SELECT id, terms, title, text FROM articles"
            " WHERE story_id = ? AND copy_of IS NULL ORDER BY id",
            [story_id],
        )
        return [with_terms_unpacked(row) for row in rows]

    def story_urls(self, story_id: str) -> set[str]:
        rows = self._rows("SELECT canonical_url FROM articles WHERE story_id = ?", [story_id])
        return {row["canonical_url"] for row in rows}
