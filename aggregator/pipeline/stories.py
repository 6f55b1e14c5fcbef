"""Put each new article into a story: the clustering stage's edge.

Order of tests, strongest first: a copy of an article already stored (same canonical
URL, same global guid, or a near-duplicate body: duplicates.assign_story), else
related coverage of an open story about the same event (events.place_article over
candidates from the inverted index), else a new story. An article that fits two open
stories shows they are one event: they are merged into the older id, and the other
id stays as an alias. When an article joins a story, the single-report stories near
it are placed again against the grown story, and merged into it if they now fit.
Decisions are pure functions in cluster/ (duplicates.py, events.py); this module
only moves data between them and Storage. Call everything here inside a transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.cluster import duplicates
from aggregator.cluster import events as clusterer
from aggregator.cluster.events import Placement, TermStats
from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.models import Assignment, NewArticle, StoryProfile
from aggregator.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoryAssignment:
    """What happened to one article: its story, how it got there, what merged."""

    article_id: int
    story_id: str
    method: str  # new | url | guid | near-duplicate | related
    score: float | None
    merged: tuple[str, ...] = ()  # story ids absorbed into story_id


class StoryNotFound(AggregatorError):
    """No story or article matches what an admin named."""


def add_article_to_story(
    storage: Storage, article: NewArticle, settings: Settings, *, new_story_id: str
) -> StoryAssignment:
    """Store ``article`` in the story it belongs to (creating one if none fits)."""
    terms = clusterer.event_terms(article.title, article.text)
    storage.count_document(terms)
    stats = clusterer.term_stats(terms, *_frequencies(storage, terms))
    assignment, placement = _choose_story(storage, article, settings, stats)
    article_id = storage.add_article(article, assignment, new_story_id)
    story_id = assignment.story_id or new_story_id
    grow_profile(storage, story_id, clusterer.normalized(terms), stats.df, stats.documents)
    merged = tuple(
        absorbed
        for other, score in placement.also
        if (absorbed := merge_stories(storage, story_id, other, article.fetched_at, score))
    )
    if placement.nearby:
        merged += _absorb_single_reports(
            storage, story_id, placement.nearby, settings, article.fetched_at
        )
    survivor = storage.resolve_story_id(story_id) or story_id
    return StoryAssignment(article_id, survivor, assignment.method, assignment.score, merged)


def _absorb_single_reports(
    storage: Storage, story_id: str, nearby: Sequence[str], settings: Settings, now: datetime
) -> tuple[str, ...]:
    """Merge into the story just joined the single-report stories near it that it now
    fits: an early, short report that matched nothing when it came joins the story that
    grew up around it, as it would had it come now (same join and lead tests)."""
    absorbed = []
    for single in storage.single_report_stories(nearby):
        story_id = storage.resolve_story_id(story_id) or story_id
        (title, text), *_ = storage.story_member_texts(single)
        score = _fit(storage, story_id, title, text, settings)
        if score is not None and (gone := merge_stories(storage, story_id, single, now, score)):
            absorbed.append(gone)
    return tuple(absorbed)


def _fit(
    storage: Storage, story_id: str, title: str, text: str, settings: Settings
) -> float | None:
    """How well an already stored article fits ``story_id`` as related coverage, or None
    if it would not join it."""
    terms = clusterer.event_terms(title, text)
    stats = clusterer.term_stats(terms, *_frequencies(storage, terms))
    placement = _place(storage, [story_id], title, text, stats, settings)
    return placement.score if placement.story_id == story_id else None


def _frequencies(storage: Storage, terms: dict[str, float]) -> tuple[dict[str, int], int]:
    """The document frequencies of ``terms`` and the number of documents counted."""
    documents, df = storage.corpus_frequencies(terms)
    return df, documents


def _choose_story(
    storage: Storage, article: NewArticle, settings: Settings, stats: TermStats
) -> tuple[Assignment, Placement]:
    copy = duplicates.assign_story(
        canonical_url=article.canonical_url,
        guid=article.guid,
        signature=article.signature,
        candidates=storage.duplicate_candidates(
            canonical_url=article.canonical_url,
            guid=article.guid,
            bands=article.bands,
            since=article.fetched_at - settings.duplicate_window,
        ),
        threshold=settings.duplicate_threshold,
    )
    if copy.story_id is not None:
        return copy, Placement(copy.story_id, copy.score or 0.0)
    window = settings.clustering
    moment = article.published_at or article.fetched_at
    candidates = storage.open_story_candidates(
        clusterer.query_terms(stats.vector, stats.df, stats.documents),
        since=moment - window.window,
        first_since=moment - window.max_age,
        limit=window.candidates,
    )
    blocked = storage.split_url_story(article.canonical_url)
    candidates = [story for story in candidates if story != blocked]
    placement = _place(storage, candidates, article.title, article.text, stats, settings)
    if placement.story_id is None:
        return Assignment(None, "new"), placement
    return Assignment(placement.story_id, clusterer.RELATED, placement.score), placement


def _place(
    storage: Storage,
    candidates: list[str],
    title: str,
    text: str,
    stats: TermStats,
    settings: Settings,
) -> Placement:
    """The article (title, text, and its weighted terms) placed among ``candidates``."""
    lead = clusterer.weigh(clusterer.lead_terms(title, text), stats.idf_of)
    profiles, idf_of = candidate_profiles(storage, candidates, stats, lead_terms=lead.keys())
    window = settings.clustering
    return clusterer.place_article(
        stats.vector,
        profiles,
        idf_of,
        join_threshold=window.join_threshold,
        merge_threshold=window.merge_threshold,
        lead=lead,
        lead_threshold=window.lead_threshold,
    )


def candidate_profiles(
    storage: Storage,
    candidates: list[str],
    stats: TermStats,
    lead_terms: Iterable[str] = (),
) -> tuple[dict[str, StoryProfile], dict[str, float]]:
    """The candidates' profiles over the article's heaviest terms and all of its lead's
    (the lead's own test needs them), and ``idf_of`` grown by the IDF of their figures
    that the article lacks (the figures' cosine needs the story's whole figure vector)."""
    scored = clusterer.top_terms(stats.vector, clusterer.SCORED_TERMS)
    terms = dict.fromkeys([*scored, *lead_terms])
    profiles = storage.story_profiles(candidates, list(terms))
    idf_of = stats.idf_of
    missing = {term for profile in profiles.values() for term in profile.figures} - idf_of.keys()
    if missing:
        _, df = storage.corpus_frequencies(missing)
        idf_of = {**idf_of, **clusterer.idf_table(missing, df, stats.documents)}
    return profiles, idf_of


def grow_profile(
    storage: Storage,
    story_id: str,
    added: dict[str, float],
    added_df: dict[str, int],
    documents: int,
) -> None:
    """Add a member's unit vector to its story; the frequencies of the article's terms
    and of the story's are both at hand, so no second lookup is needed."""
    centroid, df = storage.story_centroid(story_id)
    df.update(added_df)
    _save_profile(storage, story_id, clusterer.grown_centroid(centroid, added), (documents, df))


def _save_profile(
    storage: Storage,
    story_id: str,
    centroid: dict[str, float],
    frequencies: tuple[int, dict[str, int]] | None = None,
) -> None:
    """Store a centroid with its index keys and norm, weighted by today's frequencies."""
    documents, df = frequencies or storage.corpus_frequencies(centroid)
    idf_of = clusterer.idf_table(centroid, df, documents)
    keys = clusterer.index_keys(centroid, idf_of)
    norm = clusterer.centroid_norm(centroid, idf_of)
    storage.save_story_profile(story_id, centroid, keys, norm)


def merge_stories(
    storage: Storage, first: str, second: str, now: datetime, score: float | None = None
) -> str | None:
    """Merge two stories into the older id; return the id absorbed (None if nothing to do
    or an admin split forbids it). The absorbed id stays as an alias of the survivor."""
    first = storage.resolve_story_id(first) or first
    second = storage.resolve_story_id(second) or second
    if first == second or _split_forbids(storage, first, second):
        return None
    created = storage.story_created_at([first, second])
    survivor, absorbed = sorted((first, second), key=lambda story: (created[story], story))
    kept, _ = storage.story_centroid(survivor)
    taken, _ = storage.story_centroid(absorbed)
    storage.move_story_members(absorbed, survivor)
    _save_profile(storage, survivor, clusterer.grown_centroid(kept, taken))
    storage.refresh_story(survivor, now)
    log.info("merged story %s into %s (score %s)", absorbed, survivor, score)
    return absorbed


def _split_forbids(storage: Storage, first: str, second: str) -> bool:
    """An admin split an article out of one of these stories; the other holds it now."""
    return bool(
        storage.split_urls_between([first]) & storage.story_urls(second)
        or storage.split_urls_between([second]) & storage.story_urls(first)
    )


def split_article(storage: Storage, url: str, now: datetime) -> tuple[str, str]:
    """Take the article at ``url`` out of its story into a new one; remembered so that
    later merges do not put it back. Returns (old story id, new story id)."""
    row = storage.article_by_url(url)
    if row is None:
        raise StoryNotFound(f"no stored article has the URL {url}")
    old_story = row["story_id"]
    new_story = duplicates.new_story_id("split", f"{row['id']}:{now.isoformat()}")
    storage.detach_article(row["id"], new_story, now)
    storage.record_override("split", now, article_url=row["canonical_url"], story_id=old_story)
    for story in (old_story, new_story):
        _rebuild_profile(storage, story)
        storage.refresh_story(story, now)
    return old_story, new_story


def merge_by_admin(storage: Storage, first: str, second: str, now: datetime) -> str:
    """An admin's merge; returns the surviving id."""
    for story in (first, second):
        if storage.resolve_story_id(story) is None:
            raise StoryNotFound(f"no story has the id {story}")
    # The admin's latest word wins: an earlier split between these stories is undone.
    storage.forget_splits(
        [storage.resolve_story_id(first) or first, storage.resolve_story_id(second) or second]
    )
    absorbed = merge_stories(storage, first, second, now)
    survivor = storage.resolve_story_id(first) or first
    storage.record_override("merge", now, story_id=absorbed, target_story_id=survivor)
    return survivor


def _rebuild_profile(storage: Storage, story_id: str) -> None:
    """Recompute a story's centroid from its members (after one left)."""
    centroid: dict[str, float] = {}
    members = storage.story_member_texts(story_id)
    for title, text in members:
        for term, weight in clusterer.normalized(clusterer.event_terms(title, text)).items():
            centroid[term] = centroid.get(term, 0.0) + weight
    _save_profile(storage, story_id, clusterer.grown_centroid({}, centroid))
