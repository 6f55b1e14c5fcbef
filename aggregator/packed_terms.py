"""Weighted terms as stored: an article's terms (``articles.terms``) and a story's summed
report vectors (``stories.centroid``), each in one compact value rather than a row per
term. A story's centroid is read and written on the path of every new article, and a
row per term was most of that cost. Here, not in storage/, because an extraction
worker packs a new article's terms (cluster/features.py): compressing them cost the
storing process half a millisecond an article.

The format: a little-endian uint32 count, that many float64 weights, then the terms in
UTF-8 separated by NUL (a term never holds one: cluster/events.py's terms are runs of
word characters); zlib-compressed behind a ``z``, or as it is behind an ``r``. Weights
round-trip exactly.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Mapping

_COUNT = struct.Struct("<I")
_ZLIB, _RAW = b"z", b"r"  # the first byte: how the rest is stored


def pack_terms(terms: Mapping[str, float], *, compress: bool = True) -> bytes:
    """``terms`` as stored; ``compress=False`` for values read on every new article
    (a story's centroid): a third faster to read, a third bigger."""
    weights = array("d", terms.values())
    if sys.byteorder == "big":
        weights.byteswap()
    packed = _COUNT.pack(len(weights)) + weights.tobytes() + "\0".join(terms).encode()
    return _ZLIB + zlib.compress(packed, 1) if compress else _RAW + packed


def unpack_terms(stored: bytes) -> dict[str, float]:
    return dict(zip(*unpack_terms_apart(stored), strict=True))


def unpack_terms_apart(stored: bytes) -> tuple[list[str], array[float]]:
    """``unpack_terms`` as the terms and their weights, in the same order, without a
    dict: for a reader that makes arrays of them (the refinement, every report of the
    window)."""
    data = zlib.decompress(stored[1:]) if stored[:1] == _ZLIB else stored[1:]
    (count,) = _COUNT.unpack_from(data)
    end = _COUNT.size + 8 * count
    weights = array("d")
    weights.frombytes(data[_COUNT.size : end])
    if sys.byteorder == "big":
        weights.byteswap()
    names = data[end:].decode().split("\0") if count else []
    return names, weights
