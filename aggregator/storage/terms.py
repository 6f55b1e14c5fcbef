"""Stored terms read back (the format: aggregator/packed_terms.py)."""

from __future__ import annotations

from typing import Any

from aggregator.packed_terms import unpack_terms


def with_terms_unpacked(row: dict[str, Any]) -> dict[str, Any]:
    """A row read with its ``terms`` column, that column unpacked (None if not stored)."""
    return {**row, "terms": unpack_terms(row["terms"]) if row["terms"] else None}
