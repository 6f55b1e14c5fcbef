"""Related coverage: different outlets' own reports of one event. Pure functions, no IO.

An article is a bag of weighted terms from its title, lead and body. Capitalised words
(actors, places, ships, systems) and figures (tolls, ages, sums, hull numbers) count
for more, because they are what tells one event from another of the same kind. Terms
are weighted by how distinctive they are in this stream (``idf_table``): a name in
every second article ("Trump", "Pentagon") says little, whatever its rarity in
general English. Each article is a unit vector; a story keeps the sum of its reports'
vectors, and an article fits a story by its *average* similarity to the story's
reports (the sum's dot product over the number of reports), so a story that grew
loose does not attract more, and one member alone cannot pull an article in. Copies
add nothing (one report, republished). Online placement only joins or starts a story;
stories merge and split in the refinement after each refresh (refine.py, reconcile.py),
on the evidence of all their reports. The defaults were fitted on the ECB+ and GVC
train sets (bench/cluster_fit.py; bench/cluster_eval.py reports every set).
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import ge, le, mul
from typing import cast

from aggregator.models import StoryProfile

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
        # Each distinct word once, times its count: the same sums (weights and boosts
        # are multiples of 0.5, so every partial sum is exact in any order).
        for word, times in Counter(_TERM.findall(part)).items():
            term = word.lower().strip("'’-")
            if len(term) < 2 or term in _STOPWORDS:
                continue
            if "0" <= term[0] <= "9":  # a figure: only figures start with a digit (_TERM)
                boost = FIGURE_BOOST
            else:
                boost = CAPITALISED_BOOST if word[0].isupper() else 1.0
            counts[term] = counts.get(term, 0.0) + times * weight * boost
    return {term: 1.0 + math.log(value) if value > 1 else value for term, value in counts.items()}


def background_share(term: str) -> float:
    """The share of general-English articles of BACKGROUND_WORDS words that would hold
    ``term``, from its word frequency (wordfreq's Zipf value: log10 of uses per
    billion words); about 0 for a word wordfreq never saw (most names)."""
    share = _BACKGROUND_SHARES.get(term)
    if share is None:
        if len(_BACKGROUND_SHARES) >= MAX_BACKGROUND_SHARES:
            _BACKGROUND_SHARES.clear()
        per_word = 10 ** (english_zipf(term) - 9)
        share = _BACKGROUND_SHARES[term] = 1.0 - math.exp(-per_word * BACKGROUND_WORDS)
    return share


def english_zipf(term: str) -> float:
    """wordfreq's ``zipf_frequency(term, "en")``. A term of plain ASCII letters (most) is
    its own only token, so it is read straight from wordfreq's table with the same
    arithmetic, without the tokenizer: about 4 instead of 25 microseconds, the same
    value (a test compares them); the rest goes through ``zipf_frequency``."""
    # Imported here: wordfreq takes about a second to load, and a process that stores
    # articles weighed by the workers, or fetches nothing new, never asks.
    import wordfreq

    if not (term.isascii() and term.isalpha()):
        return float(wordfreq.zipf_frequency(term, "en"))
    minimum = wordfreq.zipf_to_freq(0.0)  # zipf_frequency's default floor
    frequency = wordfreq.get_frequency_dict("en").get(term)  # cached by wordfreq
    if frequency is None:  # an unknown word gets the floor, unrounded
        value = minimum
    else:  # 1/f summed over one token, then 3 significant digits, as word_frequency
        value = max(1.0 / (1.0 / frequency), minimum)
        value = round(value, math.floor(-math.log(value, 10)) + 3)
    return round(math.log(value, 10) + 9, 2)


# background_share's memory: a plain dict, read once per term of every new article.
_BACKGROUND_SHARES: dict[str, float] = {}
MAX_BACKGROUND_SHARES = 200_000


def background_shares(terms: Iterable[str]) -> array[float]:
    """``background_share`` of each term, in order: computed with the terms, on an
    extraction worker (a wordfreq lookup costs tens of microseconds per new word). An
    array of doubles crosses to the storing process as one value of a few KB (a dict
    of them cost that process as much to unpickle as the terms themselves)."""
    names = list(terms)
    remembered = list(map(_BACKGROUND_SHARES.get, names))  # C-level: most are known
    if None in remembered:  # the new words, one at a time
        pairs = zip(names, remembered, strict=True)
        remembered = [background_share(name) if share is None else share for name, share in pairs]
    return array("d", cast("list[float]", remembered))


def remember_background_shares(terms: Collection[str], shares: Sequence[float]) -> None:
    """Take the shares of ``terms`` (distinct, in the order of ``shares``) computed in
    another process into this one's memory, so that weighing them again here (the
    refinement after the refresh, a story's rebuilt sums) never looks a word up in
    wordfreq. Only the words not remembered yet are written: a share never changes,
    and most of an article's words are known (this runs on every stored article)."""
    if len(terms) != len(shares):
        raise ValueError(f"{len(terms)} terms but {len(shares)} shares")
    new = set(terms).difference(_BACKGROUND_SHARES)  # C-level: a few words an article
    if not new:
        return
    if len(_BACKGROUND_SHARES) + len(new) > MAX_BACKGROUND_SHARES:
        _BACKGROUND_SHARES.clear()  # every word of this article is new again
        new = set(terms)
    if len(new) * 8 > len(terms):  # a young process: all of them, in one pass
        _BACKGROUND_SHARES.update(zip(terms, shares, strict=True))
        return
    names = list(terms)  # a few new words: found by position
    for term in new:
        _BACKGROUND_SHARES[term] = shares[names.index(term)]


def idf_table(terms: Iterable[str], df: Mapping[str, int], documents: int) -> dict[str, float]:
    """How distinctive each term is in this stream: log(N / df) over the documents
    counted so far, where general English's rarity enters only as PRIOR_DOCUMENTS
    imagined documents (so a young database does not treat "navy" as rare, and a big
    one weighs "Trump" by how often *its* articles name him, not English at large). A
    term in every document weighs about 0: it tells no story from another. Computed
    once per article (hot loops only look it up)."""
    names = list(terms)
    idf = _idf_values(names, list(map(df.get, names, repeat(0))), documents)
    return dict(zip(names, idf, strict=True))


def _idf_values(
    terms: Collection[str],
    counts: Sequence[int],
    documents: int,
    shares: Sequence[float] | None = None,
) -> list[float]:
    """``idf_table``'s values, in order, for terms whose document frequencies are
    ``counts`` (in the same order): lists, not dicts, on a new article's ~500 terms.
    ``shares``: the terms' ``background_share`` when known (in the same order)."""
    total = documents + PRIOR_DOCUMENTS + 1.0
    if shares is None:  # remembered, or (forgotten when the memory was full) looked up
        shares = background_shares(terms)
    log = math.log
    pairs = zip(counts, shares, strict=True)
    return [log(total / (df + PRIOR_DOCUMENTS * share + 0.5)) for df, share in pairs]


@dataclass(frozen=True)
class TermStats:
    """An article's weighted terms with the corpus statistics they were weighed by:
    what placing the article needs, carried as one value."""

    vector: dict[str, float]  # unit length
    counts: list[int]  # the document frequency of each term, in the vector's order
    documents: int  # documents counted so far


def term_stats(
    terms: Mapping[str, float],
    counts: Sequence[int],
    documents: int,
    *,
    shares: Sequence[float] | None = None,
) -> TermStats:
    """Weigh an article's ``event_terms`` by the stream's frequencies of its terms:
    ``counts`` holds each one's document frequency, in the order of ``terms``, and
    ``shares`` (if given) each one's ``background_share`` (as an extraction worker
    computed them: ``background_shares``). The same arithmetic as
    ``weigh(terms, idf_table(...))``, over lists instead of dicts."""
    idf = _idf_values(terms, counts, documents, shares)
    vector = _unit_vector(terms, list(map(mul, terms.values(), idf)))
    return TermStats(vector, list(counts), documents)


def weigh(terms: Mapping[str, float], idf_of: Mapping[str, float]) -> dict[str, float]:
    """TF-IDF vector of ``terms``, scaled to unit length (C-level passes where it can:
    the same products and sums, in the same order, as one term at a time)."""
    return _unit_vector(terms, list(map(mul, terms.values(), map(idf_of.__getitem__, terms))))


def _unit_vector(terms: Iterable[str], weights: list[float]) -> dict[str, float]:
    return dict(zip(terms, _unit_weights(weights), strict=True))


def _unit_weights(weights: list[float]) -> list[float]:
    norm = vector_norm(weights)
    return [weight / norm for weight in weights] if norm else weights


def vector_norm(weights: Sequence[float]) -> float:
    """The length of a vector of weights, summed in their order: every unit vector of
    the grouping is divided by this, so that vectors made apart have the same floats."""
    return math.sqrt(sum(map(mul, weights, weights)))


def query_terms(stats: TermStats) -> list[str]:
    """The article's heaviest terms that are rare enough to look up in the index.

    A term found in many documents has a long posting list and says little about the
    event; skipping those keeps the cost per article flat as the database grows.
    """
    most = max(MIN_LOOKUP_DF, int(stats.documents * MAX_LOOKUP_DF_SHARE))
    # C-level: the vector's terms come in the order of their counts
    rare = dict(compress(stats.vector.items(), map(ge, repeat(most), stats.counts)))
    return top_terms(rare, QUERY_TERMS)


def top_terms(vector: Mapping[str, float], count: int) -> list[str]:
    """The ``count`` heaviest terms, ties broken by the term so results are stable."""
    candidates: Iterable[str] = vector
    if len(vector) > count > 0:  # only the terms at least as heavy as the count-th
        floor = sorted(vector.values())[-count]  # a C sort of floats, not of terms
        candidates = compress(vector, map(le, repeat(floor), vector.values()))
    # Two C-level sorts beat a heap with a Python key: by term, then by weight (a stable
    # sort, also in reverse, keeps equal weights in term order).
    return sorted(sorted(candidates), key=vector.__getitem__, reverse=True)[:count]


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
    grown = dict(centroid or added)  # a new story's first report: 0.0 + weight is weight
    if centroid:
        for term, weight in added.items():
            grown[term] = grown.get(term, 0.0) + weight
    return {term: grown[term] for term in top_terms(grown, STORY_PROFILE_TERMS)}


def index_keys(centroid: Mapping[str, float]) -> list[str]:
    """A story's most distinctive terms (its summed vectors are weighted already): its
    entries in the inverted index."""
    return top_terms(centroid, STORY_KEY_TERMS)


def centroid_norm(centroid: Mapping[str, float]) -> float:
    """Length of a story's summed report vectors (stored with the story)."""
    return math.sqrt(sum(weight * weight for weight in centroid.values()))
