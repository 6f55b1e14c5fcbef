"""Small helpers shared by the storage modules (storage.py and its mixins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime) -> str:
    """A timestamp as stored: ISO 8601 in UTC, to the second (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def placeholders(values: Sequence[Any]) -> str:
    """``?,?,?`` for an ``IN (...)`` over ``values``."""
    return ",".join("?" * len(values))
