"""Group copies of one article into one story. Pure functions, no IO.

Three signals, strongest first:

* ``url``: the same canonical URL (another feed lists the very same page);
* ``guid``: the same globally unique guid (syndicated copies keep the wire's guid);
* ``near-duplicate``: the same body republished under other boilerplate, a credit
  line or a new headline. Bodies are MinHashed over word 3-shingles; LSH band keys
  (stored in the database, indexed) find candidates without comparing all pairs,
  and the signatures estimate the Jaccard similarity of a candidate.

Grouping different outlets' own reports of one event comes later and will add a
``related`` method beside these.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash

NUM_PERM = 64
BANDS = 16  # 16 bands x 4 rows: candidates from Jaccard ~0.5 upwards
ROWS = NUM_PERM // BANDS
SHINGLE_WORDS = 3
MIN_SHINGLES = 25  # shorter bodies are too small for a trustworthy estimate
_SEED = 20261125
_WORD = re.compile(r"\w+", re.UNICODE)

DUPLICATE = "duplicate"
LEAD = "lead"


@dataclass(frozen=True)
class Fingerprint:
    """A body's MinHash signature and its LSH band keys."""

    signature: bytes  # NUM_PERM little-endian uint64 values
    bands: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """A stored article that might be a copy of a new one."""

    article_id: int
    story_id: str
    canonical_url: str
    guid: str | None
    signature: bytes | None


@dataclass(frozen=True)
class Assignment:
    """Where a new article goes: an existing story, or a new one (story_id None)."""

    story_id: str | None
    method: str  # "url", "guid", "near-duplicate", or "new"
    score: float | None = None
    matched_article_id: int | None = None


def fingerprint(text: str) -> Fingerprint | None:
    """MinHash a body; None when it is too short to compare reliably."""
    words = _WORD.findall(text.lower())
    shingles = {
        " ".join(words[i : i + SHINGLE_WORDS]).encode("utf-8")
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }
    if len(shingles) < MIN_SHINGLES:
        return None
    minhash = MinHash(num_perm=NUM_PERM, seed=_SEED)
    minhash.update_batch(list(shingles))
    values = np.asarray(minhash.hashvalues, dtype="<u8")
    return Fingerprint(signature=values.tobytes(), bands=band_keys(values))


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
