"""Group copies of one article into one story. Pure functions, no IO.

Three signals, strongest first:

* ``url``: the same canonical URL (another feed lists the very same page);
* ``guid``: the same globally unique guid (syndicated copies keep the wire's guid);
* ``near-duplicate``: the same body republished under other boilerplate, a credit
  line or a new headline. Bodies are MinHashed over word 3-shingles; LSH band keys
  (stored in the database, indexed) find candidates without comparing all pairs,
  and the signatures estimate the Jaccard similarity of a candidate.

Different outlets' own reports of one event join as ``related`` coverage: see the
second half of this module.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from wordfreq import zipf_frequency

NUM_PERM = 64
BANDS = 16  # 16 bands x 4 rows: candidates from Jaccard ~0.5 upwards
ROWS = NUM_PERM // BANDS
SHINGLE_WORDS = 3
MIN_SHINGLES = 25  # shorter bodies are too small for a trustworthy estimate
_SEED = 20261125
_MAX_HASH = np.uint64((1 << 32) - 1)
_POSITION_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd, so no information is lost mod 2^64
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
    hashes = np.fromiter(
        (zlib.crc32(word.encode()) for word in words), dtype=np.uint64, count=len(words)
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


# -- related coverage: different outlets' own reports of one event ----------------------
#
# An article is a bag of weighted terms from its title, lead and body. Capitalised words
# (actors, places, ships, systems) and figures (tolls, ages, sums, hull numbers) count
# for more, because they are what tells one event from another of the same kind. Terms
# are weighted by how distinctive they are in this stream (``idf_table``): a name in
# every second article ("Trump", "Pentagon") says little, whatever its rarity in
# general English. Each article is a unit vector; a story keeps the sum of its reports'
# vectors, and an article fits a story by its *average* similarity to the story's
# reports (the sum's dot product over the number of reports), so a story that grew
# loose does not attract more, and one member alone cannot pull an article in. Copies
# add nothing (one report, republished). Online placement only joins or starts a story;
# stories merge and split in the refinement after each refresh (cluster_refine.py),
# on the evidence of all their reports. The defaults were fitted on the ECB+ and GVC
# train sets (bench/cluster_fit.py; bench/cluster_eval.py reports every set).

RELATED = "related"

TITLE_WEIGHT = 2.0
LEAD_WEIGHT = 1.5
BODY_WEIGHT = 1.0
LEAD_WORDS = 60
CAPITALISED_BOOST = 3.0
FIGURE_BOOST = 3.0  # numbers count like names: both are an event's specifics
# Term weights come from the stream's own document frequencies; general English's word
# frequencies (wordfreq) stand in for PRIOR_DOCUMENTS documents, for a young database.
PRIOR_DOCUMENTS = 20
BACKGROUND_WORDS = 300  # a typical article's length, to turn word into document shares
QUERY_TERMS = 15  # distinctive terms of a new article used to look up candidates
MIN_LOOKUP_DF = 50  # terms in at most this many documents are always looked up ...
MAX_LOOKUP_DF_SHARE = 0.002  # ... and, in a big corpus, those in at most this share
STORY_KEY_TERMS = 40  # distinctive terms of a story kept in the inverted index
SCORED_TERMS = 100  # an article's heaviest terms scored against each candidate story
STORY_PROFILE_TERMS = 200  # terms kept per story (of the sum of its reports' vectors)

_TERM = re.compile(r"[^\W\d_][\w'’-]*|\d+(?:[.,]\d+)*", re.UNICODE)
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been
    being it its this that these those he she they we you i his her their our your them him
    us me my not no do does did has have had will would can could should may might must shall
    than then there here what which who whom whose when where why how all any both each few
    more most other some such only own same so too very just also into about over after
    before under again further once up down out off said says say told according new one
    two three year years last first week monday tuesday wednesday thursday friday saturday
    sunday today yesterday people mr mrs ms""".split()
)


@dataclass(frozen=True)
class Placement:
    """Where a new article's related coverage puts it."""

    story_id: str | None  # None: no open story is about the same event
    score: float  # the article's average similarity to the best story's reports


def event_terms(title: str, text: str) -> dict[str, float]:
    """Field-weighted, sublinear term frequencies of an article (no IDF yet)."""
    return _weighted_terms(_fields(title, text))


def _fields(title: str, text: str) -> list[tuple[str, float]]:
    """The article's title, lead and rest of the body, each with its weight."""
    body = text[len(title) :] if title and text.startswith(title) else text
    words = body.split()
    return [
        (title, TITLE_WEIGHT),
        (" ".join(words[:LEAD_WORDS]), LEAD_WEIGHT),
        (" ".join(words[LEAD_WORDS:]), BODY_WEIGHT),
    ]


def _weighted_terms(fields: list[tuple[str, float]]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for part, weight in fields:
        for term, capitalised in _terms(part):
            counts[term] = counts.get(term, 0.0) + weight * _boost(term, capitalised)
    return {term: 1.0 + math.log(value) if value > 1 else value for term, value in counts.items()}


def _boost(term: str, capitalised: bool) -> float:
    if is_figure(term):
        return FIGURE_BOOST
    return CAPITALISED_BOOST if capitalised else 1.0


def _terms(text: str) -> list[tuple[str, bool]]:
    found = []
    for word in _TERM.findall(text):
        term = word.lower().strip("'’-")
        if len(term) >= 2 and term not in _STOPWORDS:
            found.append((term, word[0].isupper()))
    return found


def is_figure(term: str) -> bool:
    """A number term: the only terms that start with a digit (see ``_TERM``)."""
    return "0" <= term[:1] <= "9"


@functools.lru_cache(maxsize=200_000)
def background_share(term: str) -> float:
    """The share of general-English articles of BACKGROUND_WORDS words that would hold
    ``term``, from its word frequency (wordfreq's Zipf value: log10 of uses per
    billion words); about 0 for a word wordfreq never saw (most names)."""
    per_word = 10 ** (zipf_frequency(term, "en") - 9)
    return 1.0 - math.exp(-per_word * BACKGROUND_WORDS)


def idf_table(terms: Iterable[str], df: Mapping[str, int], documents: int) -> dict[str, float]:
    """How distinctive each term is in this stream: log(N / df) over the documents
    counted so far, where general English's rarity enters only as PRIOR_DOCUMENTS
    imagined documents (so a young database does not treat "navy" as rare, and a big
    one weighs "Trump" by how often *its* articles name him, not English at large). A
    term in every document weighs about 0: it tells no story from another. Computed
    once per article (hot loops only look it up)."""
    total = documents + PRIOR_DOCUMENTS + 1.0
    return {
        term: math.log(total / (df.get(term, 0) + PRIOR_DOCUMENTS * background_share(term) + 0.5))
        for term in terms
    }


def weigh(terms: Mapping[str, float], idf_of: Mapping[str, float]) -> dict[str, float]:
    """TF-IDF vector of ``terms``, scaled to unit length."""
    return _unit({term: value * idf_of[term] for term, value in terms.items()})


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(value * value for value in vector.values()))
    return {term: value / norm for term, value in vector.items()} if norm else vector


def query_terms(vector: Mapping[str, float], df: Mapping[str, int], documents: int) -> list[str]:
    """The article's heaviest terms that are rare enough to look up in the index.

    A term found in many documents has a long posting list and says little about the
    event; skipping those keeps the cost per article flat as the database grows.
    """
    most = max(MIN_LOOKUP_DF, int(documents * MAX_LOOKUP_DF_SHARE))
    rare = {term: weight for term, weight in vector.items() if df.get(term, 0) <= most}
    return top_terms(rare, QUERY_TERMS)


def top_terms(vector: Mapping[str, float], count: int) -> list[str]:
    """The ``count`` heaviest terms, ties broken by the term so results are stable."""
    return [term for term, _ in heapq.nsmallest(count, vector.items(), key=_heaviest_first)]


def _heaviest_first(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]


@dataclass(frozen=True)
class StoryProfile:
    """What placing an article needs of one candidate story: the story's summed report
    vectors at the article's own terms (the others add nothing to a dot product) and
    how many independent reports that sum holds."""

    shared: Mapping[str, float]
    reports: int


def story_fit(article: Mapping[str, float], profile: StoryProfile) -> float:
    """The article's average cosine with the story's reports (all unit vectors): the
    dot product with their sum, over their number."""
    if profile.reports <= 0:
        return 0.0
    dot = sum(value * article.get(term, 0.0) for term, value in profile.shared.items())
    return dot / profile.reports


def place_article(
    article: Mapping[str, float], profiles: Mapping[str, StoryProfile], *, join_threshold: float
) -> Placement:
    """The open story the article fits best on average, if at least ``join_threshold``
    (the same level at which the refinement keeps two groups of reports together)."""
    scored = sorted(
        ((story_fit(article, profile), story_id) for story_id, profile in profiles.items()),
        key=lambda pair: (-pair[0], pair[1]),
    )
    if not scored or scored[0][0] < join_threshold:
        return Placement(None, round(scored[0][0], 3) if scored else 0.0)
    return Placement(scored[0][1], round(scored[0][0], 3))


def grown_centroid(centroid: Mapping[str, float], added: Mapping[str, float]) -> dict[str, float]:
    """A story's summed report vectors with one more report's unit vector (or another
    story's sum) added, pruned to its heaviest terms."""
    grown = dict(centroid)
    for term, weight in added.items():
        grown[term] = grown.get(term, 0.0) + weight
    return dict(heapq.nsmallest(STORY_PROFILE_TERMS, grown.items(), key=_heaviest_first))


def index_keys(centroid: Mapping[str, float]) -> list[str]:
    """A story's most distinctive terms (its summed vectors are weighted already): its
    entries in the inverted index."""
    return top_terms(centroid, STORY_KEY_TERMS)


def centroid_norm(centroid: Mapping[str, float]) -> float:
    """Length of a story's summed report vectors (stored with the story)."""
    return math.sqrt(sum(weight * weight for weight in centroid.values()))
