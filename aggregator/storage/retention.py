"""The retention half of Storage: which stories have aged out, deleting them with
everything that points at them, giving the freed pages back, and backups.

Mixed into ``Storage`` like the story index, so callers still see one door. The
decisions (the cutoff, batch sizes, when to compact) live in pipeline/prune.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aggregator.errors import StorageError
from aggregator.storage.sql import SqlDoor, iso, placeholders

AUTO_VACUUM_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
BACKUP_PAGES_PER_STEP = 1024  # copy in steps so a writer is never blocked for long


class RetentionStorage(SqlDoor):
    """Mixed into Storage."""

    def expired_story_ids(self, cutoff: datetime, keep_newest: int, limit: int) -> list[str]:
        """Live stories with no member dated at or after ``cutoff``, outside the newest
        ``keep_newest`` stories (the published window); stories with no members at all
        count as expired too."""
        rows = self._query(
            """
            SELECT s.id FROM stories s
            WHERE s.merged_into IS NULL
              AND NOT EXISTS (
                SELECT 1 FROM articles a
                WHERE a.story_id = s.id AND COALESCE(a.published_at, a.fetched_at) >= :cutoff
              )
              AND s.id NOT IN (
                SELECT id FROM stories WHERE merged_into IS NULL
                ORDER BY published_at DESC, id LIMIT :keep
              )
            ORDER BY s.published_at, s.id
            LIMIT :limit
            """,
            {"cutoff": iso(cutoff), "keep": keep_newest, "limit": limit},
        )
        return [row["id"] for row in rows]

    def delete_stories(self, story_ids: Sequence[str]) -> int:
        """Delete these stories, their articles (full text, LSH bands, moves, the FTS rows
        via its trigger), their centroids and index keys, the aliases that redirect to
        them and the admin overrides naming them. Returns the articles deleted.
        Call inside ``transaction()``."""
        if not story_ids:
            return 0
        ids = list(story_ids)
        aliases = [
            row["id"]
            for row in self._query(
                f"SELECT id FROM stories WHERE merged_into IN ({placeholders(ids)})", ids
            )
        ]
        every = [*ids, *aliases]
        marks = placeholders(every)
        for table in ("article_bands", "story_moves", "uncounted_articles"):
            self.db.execute(
                f"DELETE FROM {table} WHERE article_id IN"
                f" (SELECT id FROM articles WHERE story_id IN ({marks}))",
                every,
            )
        deleted = self.db.execute(f"DELETE FROM articles WHERE story_id IN ({marks})", every)
        self.db.execute(f"DELETE FROM story_keys WHERE story_id IN ({marks})", every)
        self.db.execute(
            f"DELETE FROM story_overrides WHERE story_id IN ({marks})"
            f" OR target_story_id IN ({marks})",
            [*every, *every],
        )
        self.db.execute(f"DELETE FROM stories WHERE id IN ({marks})", every)
        return int(deleted.rowcount)

    def compact(self, *, convert: bool) -> int:
        """Give free pages back to the file system; returns the pages freed.

        Databases created by this version use incremental auto-vacuum, so this is
        cheap. An older file is converted by one full VACUUM, only when ``convert``
        (the admin's `aggregator prune`): it rewrites the whole file. Call outside
        ``transaction()``: the pragmas commit whatever is pending.
        """
        before = self._pragma_int("freelist_count")
        if self._pragma_int("auto_vacuum") == AUTO_VACUUM_INCREMENTAL:
            # executescript steps the pragma to the end; execute() frees one page only.
            self.db.conn.executescript("PRAGMA incremental_vacuum;")
        elif convert:
            self.db.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self.db.conn.execute("VACUUM")
        else:
            return 0
        # Shrink the WAL too; it only succeeds fully when no reader holds it.
        self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return max(0, before - self._pragma_int("freelist_count"))

    def integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check``'s complaints; empty when the file is sound."""
        rows = self.db.conn.execute("PRAGMA integrity_check").fetchall()
        return [str(row[0]) for row in rows if row[0] != "ok"]

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the database at ``target`` (SQLite's online backup:
        readers and the writer carry on meanwhile). Written beside it and renamed, so
        ``target`` is never a half-written file."""
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        destination = sqlite3.connect(str(partial))
        try:
            self.db.conn.backup(destination, pages=BACKUP_PAGES_PER_STEP)
            problems = destination.execute("PRAGMA quick_check").fetchall()
            # One file, no -wal beside it: the copy is self-contained.
            destination.execute("PRAGMA journal_mode = DELETE").fetchall()
        finally:
            destination.close()
        if [row for row in problems if row[0] != "ok"]:
            partial.unlink(missing_ok=True)
            raise StorageError(f"backup failed its check: {problems[:3]}")
        partial.replace(target)

    def _pragma_int(self, name: str) -> int:
        row = self.db.conn.execute(f"PRAGMA {name}").fetchone()
        return int(row[0]) if row else 0
