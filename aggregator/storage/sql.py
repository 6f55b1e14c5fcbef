"""What the storage modules share: the unit of work, row helpers, and the translation
of sqlite3's errors into ours at the door."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlite_utils import Database

from aggregator.errors import DatabaseUnwritable, StorageError

Params = ParamSpec("Params")
Returned = TypeVar("Returned")
StorageClass = TypeVar("StorageClass", bound=type)


class SqlDoor:
    """What Storage and each of its mixins share: the database, the unit of work and
    two ways to read."""

    db: Database
    path: Path

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
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path) from exc
        try:
            yield
            connection.commit()
        except sqlite3.Error as exc:
            connection.rollback()
            self._rolled_back()
            raise storage_error(exc, self.path) from exc
        except BaseException:
            connection.rollback()
            self._rolled_back()
            raise
        self._committed()

    def _rolled_back(self) -> None:
        """After a unit of work rolled back: undo what a mixin kept in memory for it."""

    def _committed(self) -> None:
        """After a unit of work committed."""

    def _query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> Iterator[dict[str, Any]]:
        """The rows of a SELECT as dicts (column names are unique in our queries).
        Not sqlite-utils' ``query()``: it wraps each statement in a SAVEPOINT and
        its release, ten statements more for every article stored."""
        cursor = self.db.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return (dict(zip(names, row, strict=True)) for row in cursor)

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        cursor = self.db.conn.execute(sql, params)
        row = cursor.fetchone()
        cursor.close()  # the statement done with, not left open until collected
        if row is None:
            return None
        return dict(zip([column[0] for column in cursor.description], row, strict=True))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self._query(sql, params))


def iso(moment: datetime) -> str:
    """A timestamp as stored: ISO 8601 in UTC, to the second (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def placeholders(values: Sequence[Any]) -> str:
    """``?,?,?`` for an ``IN (...)`` over ``values``."""
    return ",".join("?" * len(values))


# SQLite's primary result codes that mean no write can succeed for now.
UNWRITABLE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})


def storage_error(exc: sqlite3.Error, path: Path) -> StorageError:
    """Our error for a failed database operation, naming the file: "database or disk is
    full: /data/aggregator.db" (a DatabaseUnwritable, like an I/O error or a read-only
    file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in UNWRITABLE_CODES:
        return DatabaseUnwritable(f"{exc}: {path}")
    return StorageError(f"{exc}: {path}")


def raising_storage_errors(cls: StorageClass) -> StorageClass:
    """Make every public method of ``cls`` raise StorageError instead of sqlite3.Error,
    so callers catch one error of ours at the door (``transaction`` does it itself)."""
    for name in dir(cls):
        method = getattr(cls, name)
        if name.startswith("_") or name == "transaction" or not callable(method):
            continue
        if isinstance(inspect.getattr_static(cls, name), classmethod | staticmethod):
            continue
        setattr(cls, name, _translated(method))
    return cls


def _translated(method: Callable[Params, Returned]) -> Callable[Params, Returned]:
    @functools.wraps(method)
    def call(*args: Params.args, **kwargs: Params.kwargs) -> Returned:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise storage_error(exc, args[0].path) from exc  # type: ignore[attr-defined]

    return call
