"""The feeds half of Storage: the feeds table, kept in step with feeds.yaml, and each
feed's fetch state and health (conditional-GET validators, failures, next check).

Mixed into ``Storage``, so callers still see one door. Only SQL lives here: the
scheduling rules are in pipeline/next_check.py and pipeline/fetch_state.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aggregator.config import FeedSource
from aggregator.errors import StorageError
from aggregator.models import BodyFacts, FeedState
from aggregator.storage.sql import SqlDoor, iso


class FeedStorage(SqlDoor):
    """Mixed into Storage."""

    def sync_feeds(self, sources: Sequence[FeedSource], now: datetime) -> None:
        """Make the feeds table match feeds.yaml (feeds removed from it are disabled)."""
        with self.transaction():
            listed = {source.url for source in sources}
            for source in sources:
                self._upsert_feed(source, now)
            for row in self._query("SELECT id, url FROM feeds WHERE enabled = 1"):
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
            ever_fetched=row["last_success_at"] is not None,
        )

    def due_feed_urls(self, now: datetime) -> list[str]:
        """Enabled feeds whose next check time has come, the longest-waiting first."""
        rows = self._query(
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

    def make_unfetched_feeds_due(self, now: datetime) -> list[str]:
        """Make due now the enabled feeds that have never been fetched successfully (a
        restart is often the admin's fix for them); returns their URLs."""
        with self.transaction():
            rows = self._rows(
                """
                SELECT url FROM feeds WHERE enabled = 1 AND disabled_reason IS NULL
                  AND last_success_at IS NULL AND next_check_at > ?
                """,
                [iso(now)],
            )
            self.db.execute(
                """
                UPDATE feeds SET next_check_at = ? WHERE enabled = 1
                  AND disabled_reason IS NULL AND last_success_at IS NULL AND next_check_at > ?
                """,
                [iso(now), iso(now)],
            )
        return [row["url"] for row in rows]

    def reset_feed(self, url_or_name: str | None, now: datetime) -> list[str]:
        """Forget a feed's failures, its 410 and its recorded move; make it due now.

        Matches the feed's URL or (case-insensitively) its name, or every feed when
        ``url_or_name`` is None; returns the URLs reset.
        """
        with self.transaction():
            rows = list(
                self._query(
                    "SELECT id, url FROM feeds WHERE ? IS NULL OR url = ?"
                    " OR lower(name) = lower(?)",
                    [url_or_name, url_or_name, url_or_name],
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
            self._query(
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
