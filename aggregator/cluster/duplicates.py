"""Copies of one article: which stored article a new one repeats. Pure functions, no IO.

Three signals, strongest first:

* ``url``: the same canonical URL (another feed lists the very same page);
* ``guid``: the same globally unique guid (syndicated copies keep the wire's guid);
* ``near-duplicate``: the same body republished under other boilerplate, a credit
  line or a new headline. Bodies are MinHashed over word 3-shingles; LSH band keys
  (stored in the database, indexed) find candidates without comparing all pairs,
  and the signatures estimate the Jaccard similarity of a candidate.

Different outlets' own reports of one event join as ``related`` coverage: see
events.py.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aggregator.models import Assignment, Candidate

NUM_PERM = 64
BANDS = 16  # 16 bands x 4 rows: candidates from Jaccard ~0.5 upwards
ROWS = NUM_PERM // BANDS
SHINGLE_WORDS = 3
MIN_SHINGLES = 25  # shorter bodies are too small for a trustworthy estimate
_SEED = 20261125
_MAX_HASH = np.uint64((1 << 32) - 1)
_POSITION_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd, so no information is lost mod 2^64
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Fingerprint:
    """A body's MinHash signature and its LSH band keys."""

    signature: bytes  # NUM_PERM little-endian uint64 values
    bands: tuple[str, ...]


def fingerprint(text: str) -> Fingerprint | None:
    """MinHash a body; None when it is too short to compare reliably."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return None
    shingles = np.unique(_shingle_hashes(words))
    if len(shingles) < MIN_SHINGLES:
        return None
    a, b = _permutations()
    # multiply-add-shift hashing (Dietzfelbinger): the high 32 bits of a*h + b mod 2^64
    # are a strongly universal hash of a 32-bit h, one per permutation, all at once
    permuted = (shingles[:, np.newaxis] * a + b) >> np.uint64(32)
    values = permuted.min(axis=0).astype("<u8")
    return Fingerprint(signature=values.tobytes(), bands=band_keys(values))


def _shingle_hashes(words: list[str]) -> np.ndarray:
    """A 32-bit hash of each run of SHINGLE_WORDS words: the words' CRC-32s mixed by
    position, then scrambled (murmur3's finaliser) so that shingles sharing words do
    not get related values. Vectorised: a Python hash per shingle cost three times more."""
    hashes = np.fromiter(  # map(), not a generator: no Python frame per word
        map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words)
    )
    runs = len(words) - SHINGLE_WORDS + 1
    mixed = np.zeros(runs, dtype=np.uint64)
    for offset in range(SHINGLE_WORDS):  # Horner: h0*K^2 + h1*K + h2, wrapping mod 2^64
        mixed = mixed * _POSITION_MIX + hashes[offset : offset + runs]
    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(0xFF51AFD7ED558CCD)
    mixed ^= mixed >> np.uint64(33)
    mixed *= np.uint64(0xC4CEB9FE1A85EC53)
    mixed ^= mixed >> np.uint64(33)
    return mixed & _MAX_HASH


@functools.cache
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """The NUM_PERM hash functions (a, b), drawn once from a fixed seed: stored
    signatures stay comparable across processes and releases."""
    generator = np.random.RandomState(_SEED)  # the legacy generator: its stream is frozen
    a = generator.randint(0, 1 << 64, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd
    b = generator.randint(0, 1 << 64, size=NUM_PERM, dtype=np.uint64)
    return a, b


def band_keys(values: np.ndarray) -> tuple[str, ...]:
    """One key per LSH band: articles sharing any key are candidates."""
    keys = []
    for band in range(BANDS):
        rows = values[band * ROWS : (band + 1) * ROWS].tobytes()
        keys.append(f"{band}:{hashlib.blake2b(rows, digest_size=8).hexdigest()}")
    return tuple(keys)


def estimate_similarity(left: bytes, right: bytes) -> float:
    """Estimated Jaccard similarity of two bodies from their signatures."""
    a = np.frombuffer(left, dtype="<u8")
    b = np.frombuffer(right, dtype="<u8")
    if a.shape != b.shape:
        return 0.0
    return float(np.mean(a == b))


def is_global_guid(guid: str | None) -> bool:
    """Only guids that are unique across the web may match across feeds.

    Short opaque ids ("1234") collide between unrelated sites.
    """
    if not guid:
        return False
    return guid.startswith(("http://", "https://", "tag:", "urn:")) or len(guid) >= 24


def assign_story(
    *,
    canonical_url: str,
    guid: str | None,
    signature: bytes | None,
    candidates: Sequence[Candidate],
    threshold: float,
) -> Assignment:
    """Pick the story a new article belongs to, or none (it starts a new story)."""
    for candidate in candidates:
        if canonical_url and candidate.canonical_url == canonical_url:
            return Assignment(candidate.story_id, "url", 1.0, candidate.article_id)
    if is_global_guid(guid):
        for candidate in candidates:
            if candidate.guid == guid:
                return Assignment(candidate.story_id, "guid", 1.0, candidate.article_id)
    best = _best_near_duplicate(signature, candidates)
    if best is not None and best[1] >= threshold:
        return Assignment(best[0].story_id, "near-duplicate", round(best[1], 3), best[0].article_id)
    return Assignment(None, "new")


def _best_near_duplicate(
    signature: bytes | None, candidates: Sequence[Candidate]
) -> tuple[Candidate, float] | None:
    if signature is None:
        return None
    scored = [
        (candidate, estimate_similarity(signature, candidate.signature))
        for candidate in candidates
        if candidate.signature is not None
    ]
    return max(scored, key=lambda pair: pair[1], default=None)


def new_story_id(feed_url: str, entry_key: str) -> str:
    """A story's id: derived from its first article, so it never changes and a clean
    re-run over the same feeds gives the same ids."""
    return hashlib.sha1(f"{feed_url}\n{entry_key}".encode()).hexdigest()[:16]
