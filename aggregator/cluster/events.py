"""Related coverage: different outlets' own reports of one event. Pure functions, no IO.

An article is a bag of weighted terms from its title, lead and body. Capitalised words
(actors, places, ships, systems) and the title count for more, because they are what
tells one event from another of the same kind. Terms are weighted by IDF, mixing the
document frequencies kept in the database with a background prior from general
English (wordfreq), so a young database does not treat "navy" as rare. A new article
is compared (cosine) with the centroid of each candidate story found through the
inverted index; the defaults were chosen on the ECB+ train topics (bench/cluster_eval.py).
Figures (numbers: tolls, ages, sums, scores, years) then adjust the score: two reports
of one event quote the same ones, two events of the same kind (two earthquakes, two
coaches fired) the same names but different ones.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wordfreq import zipf_frequency

from aggregator.models import StoryProfile

RELATED = "related"

TITLE_WEIGHT = 2.0
LEAD_WEIGHT = 1.5
BODY_WEIGHT = 0.5
LEAD_WORDS = 60
CAPITALISED_BOOST = 3.0
PRIOR_SHARE = 0.5  # weight of the background prior in the IDF mix
QUERY_TERMS = 15  # distinctive terms of a new article used to look up candidates
MIN_LOOKUP_DF = 50  # terms in at most this many documents are always looked up ...
MAX_LOOKUP_DF_SHARE = 0.002  # ... and, in a big corpus, those in at most this share
STORY_KEY_TERMS = 40  # distinctive terms of a story kept in the inverted index
SCORED_TERMS = 100  # an article's heaviest terms scored against each candidate story
STORY_PROFILE_TERMS = 200  # terms kept per story centroid
# Figures: the score gains FIGURE_WEIGHT x the cosine of the article's figures with the
# story's, less FIGURE_CONFLICT, when both quote any. A logistic regression over (text
# cosine, figures cosine, both quote figures) fitted on the ECB+ train topics gave these
# in cosine units (``python -m bench.cluster_fit`` refits and prints them).
FIGURE_WEIGHT = 0.47
FIGURE_CONFLICT = 0.11
FIGURE_FLOOR = 0.15  # figures only adjust a text similarity at least this high
# When an article joins a story, single-report stories at least this related to the
# article are checked again: the grown story may now fit them (pipeline/stories.py).
NEARBY_FLOOR = 0.15

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
    score: float
    also: tuple[tuple[str, float], ...] = ()  # other stories above the merge threshold
    nearby: tuple[str, ...] = ()  # the other stories at least NEARBY_FLOOR related


def event_terms(title: str, text: str) -> dict[str, float]:
    """Field-weighted, sublinear term frequencies of an article (no IDF yet)."""
    return _weighted_terms(_fields(title, text))


def lead_terms(title: str, text: str) -> dict[str, float]:
    """The same, over the title and lead only: what the report opens with, i.e. what it
    is about. A subset of ``event_terms``' terms."""
    return _weighted_terms(_fields(title, text)[:2])


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
            boost = CAPITALISED_BOOST if capitalised else 1.0
            counts[term] = counts.get(term, 0.0) + weight * boost
    return {term: 1.0 + math.log(value) if value > 1 else value for term, value in counts.items()}


def _terms(text: str) -> list[tuple[str, bool]]:
    found = []
    for word in _TERM.findall(text):
        term = word.lower().strip("'’-")
        if len(term) >= 2 and term not in _STOPWORDS:
            found.append((term, word[0].isupper()))
    return found


@functools.lru_cache(maxsize=200_000)
def background_idf(term: str) -> float:
    """How rare a word is in general English: 7.5 minus its Zipf frequency (0 for a
    word wordfreq never saw: names, places), floored at 0.5 for the commonest words."""
    return max(0.5, 7.5 - zipf_frequency(term, "en"))


def idf_table(terms: Iterable[str], df: Mapping[str, int], documents: int) -> dict[str, float]:
    """The IDF of each term: a mix of the corpus IDF (smoothed) and the term's
    general-English rarity, computed once per article (hot loops only look it up)."""
    corpus_share = 1.0 - PRIOR_SHARE
    base = math.log(documents + 1) + 1.0
    return {
        term: PRIOR_SHARE * background_idf(term)
        + corpus_share * (base - math.log(df.get(term, 0) + 1))
        for term in terms
    }


@dataclass(frozen=True)
class TermStats:
    """An article's TF-IDF vector with the corpus statistics it was weighed by: what
    placing the article needs, carried as one value."""

    vector: dict[str, float]  # unit length
    idf_of: dict[str, float]  # the IDF of each of its terms
    df: dict[str, int]  # their document frequencies
    documents: int  # documents counted so far


def term_stats(terms: Mapping[str, float], df: dict[str, int], documents: int) -> TermStats:
    """Weigh an article's ``event_terms`` by the corpus frequencies of its terms."""
    idf_of = idf_table(terms, df, documents)
    return TermStats(weigh(terms, idf_of), idf_of, df, documents)


def weigh(terms: Mapping[str, float], idf_of: Mapping[str, float]) -> dict[str, float]:
    """TF-IDF vector of ``terms``, scaled to unit length."""
    return _unit({term: value * idf_of[term] for term, value in terms.items()})


def normalized(terms: Mapping[str, float]) -> dict[str, float]:
    """Term frequencies scaled to unit length: what one article adds to a story centroid."""
    return _unit(dict(terms))


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


def is_figure(term: str) -> bool:
    """A number term: the only terms that start with a digit (see ``_TERM``)."""
    return "0" <= term[:1] <= "9"


def centroid_norm(centroid: Mapping[str, float], idf_of: Mapping[str, float]) -> float:
    """Length of a centroid once weighted by IDF (stored with the story)."""
    return math.sqrt(sum((weight * idf_of[term]) ** 2 for term, weight in centroid.items()))


def story_similarity(
    article: Mapping[str, float], profile: StoryProfile, idf_of: Mapping[str, float]
) -> float:
    """Cosine between an article's TF-IDF vector and a story's IDF-weighted centroid."""
    if profile.norm <= 0:
        return 0.0
    # ``shared`` (from storage) holds only the article's terms that the centroid has,
    # fewer than the article's: the dot product's non-zero part
    dot = sum(
        value * weight * idf_of[term]
        for term, weight in profile.shared.items()
        if (value := article.get(term))
    )
    return dot / profile.norm


def article_figures(article: Mapping[str, float]) -> dict[str, float]:
    """The article's figures (its number terms) scaled to unit length."""
    return _unit({term: value for term, value in article.items() if is_figure(term)})


def figures_similarity(
    figures: Mapping[str, float], profile: StoryProfile, idf_of: Mapping[str, float]
) -> float | None:
    """Cosine between an article's figures and the story's (IDF-weighted); None when
    either quotes none. ``idf_of`` must cover the story's figures too."""
    theirs = {term: weight * idf_of[term] for term, weight in profile.figures.items()}
    norm = math.sqrt(sum(value * value for value in theirs.values()))
    if not figures or not norm:
        return None
    return sum(value * theirs.get(term, 0.0) for term, value in figures.items()) / norm


def relatedness_features(
    article: Mapping[str, float],
    figures: Mapping[str, float],
    profile: StoryProfile,
    idf_of: Mapping[str, float],
) -> tuple[float, float, float]:
    """(text cosine, figures cosine or 0, 1 if both quote figures else 0): what the
    score combines, and what bench/cluster_fit.py fits the weights on."""
    shared = figures_similarity(figures, profile, idf_of)
    text = story_similarity(article, profile, idf_of)
    return text, shared or 0.0, 0.0 if shared is None else 1.0


def relatedness(
    article: Mapping[str, float],
    figures: Mapping[str, float],
    profile: StoryProfile,
    idf_of: Mapping[str, float],
) -> float:
    """How surely the article reports the story's event: the text cosine, adjusted by
    the figures both quote. They move it at most halfway to 1, so that a threshold
    near 1 still asks for near-identical text."""
    text, shared, both = relatedness_features(article, figures, profile, idf_of)
    if text < FIGURE_FLOOR or not both:
        return text
    return min((1.0 + text) / 2, text + FIGURE_WEIGHT * shared - FIGURE_CONFLICT)


def place_article(
    article: Mapping[str, float],
    profiles: Mapping[str, StoryProfile],
    idf_of: Mapping[str, float],
    *,
    join_threshold: float,
    merge_threshold: float,
    lead: Mapping[str, float] | None = None,
    lead_threshold: float = 0.0,
) -> Placement:
    """Pick the open story most similar to the article, if similar enough.

    With ``lead`` (the TF-IDF vector of the article's title and lead), a story must
    also be ``lead_threshold`` similar to that alone: a report that opens with another
    event and only recalls this one further down ("the second officer relieved this
    week, after ...") shares the story's names without being about it. Other stories
    that pass ``merge_threshold`` (and the lead's test) are reported in ``also``: the
    article shows they are the same event, and the caller merges them.
    """
    figures = article_figures(article)
    lead_figures = article_figures(lead) if lead is not None else {}

    def about_it(profile: StoryProfile) -> bool:
        if lead is None or lead_threshold <= 0:
            return True
        return relatedness(lead, lead_figures, profile, idf_of) >= lead_threshold

    scored = sorted(
        ((relatedness(article, figures, profile, idf_of), story_id)
         for story_id, profile in profiles.items()),
        key=lambda pair: (-pair[0], pair[1]),
    )  # fmt: skip
    related = [story for score, story in scored if score >= NEARBY_FLOOR]
    scored = [
        (score, story)
        for score, story in scored
        if score < join_threshold or about_it(profiles[story])
    ]
    if not scored or scored[0][0] < join_threshold:
        best = scored[0][0] if scored else 0.0
        return Placement(None, round(best, 3))
    (best_score, best_story), rest = scored[0], scored[1:]
    also = tuple((story, round(score, 3)) for score, story in rest if score >= merge_threshold)
    merging = {story for story, _ in also}
    nearby = tuple(story for story in related if story != best_story and story not in merging)
    return Placement(best_story, round(best_score, 3), also, nearby)


def grown_centroid(centroid: Mapping[str, float], added: Mapping[str, float]) -> dict[str, float]:
    """A story centroid with one more member's unit vector (or another centroid) added,
    pruned to its heaviest terms."""
    grown = dict(centroid)
    for term, weight in added.items():
        grown[term] = grown.get(term, 0.0) + weight
    return dict(heapq.nsmallest(STORY_PROFILE_TERMS, grown.items(), key=_heaviest_first))


def index_keys(centroid: Mapping[str, float], idf_of: Mapping[str, float]) -> list[str]:
    """A story's most distinctive terms: its entries in the inverted index."""
    weighted = {term: weight * idf_of[term] for term, weight in centroid.items()}
    return top_terms(weighted, STORY_KEY_TERMS)
