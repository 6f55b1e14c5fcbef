"""The MinHash that migration m007 recomputes stored signatures with, frozen.

A migration must mean the same thing forever, so it carries its own copy of the
fingerprint it writes instead of running the live clusterer code
(``cluster/duplicates.py``), which may change. Never edit this module: if the live
fingerprint changes, stored signatures need a new migration with a copy of its own.
"""

from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np

NUM_PERM, BANDS, SHINGLE_WORDS, MIN_SHINGLES, SEED = 64, 16, 3, 25, 20261125
_WORD = re.compile(r"\w+", re.UNICODE)
_LOW_32_BITS = np.uint64((1 << 32) - 1)


def fingerprint_v1(text: str) -> tuple[bytes, tuple[str, ...]] | None:
    """(signature, LSH band keys) of a body, or None when it is too short."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return None
    crcs = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    runs = len(words) - SHINGLE_WORDS + 1
    mixed = np.zeros(runs, dtype=np.uint64)
    for offset in range(SHINGLE_WORDS):
        mixed = mixed * np.uint64(0x9E3779B97F4A7C15) + crcs[offset : offset + runs]
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        mixed ^= mixed >> np.uint64(33)
        mixed *= np.uint64(multiplier)
    mixed ^= mixed >> np.uint64(33)
    shingles = np.unique(mixed & _LOW_32_BITS)
    if len(shingles) < MIN_SHINGLES:
        return None
    generator = np.random.RandomState(SEED)
    a = generator.randint(0, 1 << 64, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)
    b = generator.randint(0, 1 << 64, size=NUM_PERM, dtype=np.uint64)
    values = ((shingles[:, np.newaxis] * a + b) >> np.uint64(32)).min(axis=0).astype("<u8")
    rows = NUM_PERM // BANDS
    bands = []
    for band in range(BANDS):
        digest = hashlib.blake2b(values[band * rows : (band + 1) * rows].tobytes(), digest_size=8)
        bands.append(f"{band}:{digest.hexdigest()}")
    return values.tobytes(), tuple(bands)
