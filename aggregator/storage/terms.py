"""Stored terms read back (the format: aggregator/packed_terms.py)."""

from __future__ import annotations

from typing import Any

from aggregator.packed_terms import unpack_terms, unpack_terms_apart


def with_terms_unpacked(row: dict[str, Any]) -> dict[str, Any]:
    """A row read with its ``terms`` column, that column unpacked (None if not stored)."""
    return {**row, "terms": unpack_terms(row["terms"]) if row["terms"] else None}


def with_terms_apart(row: dict[str, Any]) -> dict[str, Any]:
    """``with_terms_unpacked`` with the terms as (terms, weights) in their stored order
    (``packed_terms.unpack_terms_apart``): no dict made."""
    return {**row, "terms": unpack_terms_apart(row["terms"]) if row["terms"] else None}
