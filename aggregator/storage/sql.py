"""Small helpers shared by the storage modules (storage.py and its mixins)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database


class SqlDoor:
    """What Storage and each of its mixins share: the database, the unit of work and
    two ways to read."""

    db: Database

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

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        return next(iter(self.db.query(sql, params)), None)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))


def iso(moment: datetime) -> str:
    """A timestamp as stored: ISO 8601 in UTC, to the second (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def placeholders(values: Sequence[Any]) -> str:
    """``?,?,?`` for an ``IN (...)`` over ``values``."""
    return ",".join("?" * len(values))
