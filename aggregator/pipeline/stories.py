"""Put each new article into a story: the clustering stage's edge.

Order of tests, strongest first: a copy of an article already stored (same canonical
URL, same global guid, or a near-duplicate body: duplicates.assign_story), else
related coverage of an open story about the same event (events.place_article over
candidates from the inverted index), else a new story. Placement never merges
stories: one article is not evidence enough. After each refresh,
``refine.refine_open_stories`` clusters the open stories' reports again all at once
(cluster/refine.py) and moves what fits elsewhere (cluster/reconcile.py): stories
merge, split and take in early reports on the evidence of all their reports.
Decisions are pure functions in cluster/; this module only moves data between them
and Storage. Call everything here inside a transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aggregator.cluster import duplicates
from aggregator.cluster import events as clusterer
from aggregator.cluster.events import TermStats
from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.models import Assignment, NewArticle
from aggregator.storage import Storage
from aggregator.storage.articles import COPY_METHODS

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
    """Store ``article`` in the story it belongs to (creating one if none fits).

    Its terms come with it (computed where its body was chosen: cluster/features.py);
    an article without them has them computed here."""
    if article.terms is None:
        article = replace(article, terms=clusterer.event_terms(article.title, article.text))
    terms = article.terms or {}
    documents, counts = storage.term_counts(list(terms))
    shares = article.background
    if shares is not None and len(shares) != len(terms):
        shares = None  # not the shares of these terms: looked up instead
    # Weighed as counted together with the article itself (counted once stored, below).
    stats = clusterer.term_stats(
        terms, [count + 1 for count in counts], documents + 1, shares=shares
    )
    assignment = _choose_story(storage, article, settings, stats)
    article_id = storage.add_article(article, assignment, new_story_id)
    storage.count_document(article_id, terms)
    story_id = assignment.story_id or new_story_id
    if assignment.method not in COPY_METHODS:  # a copy is the same report again
        grow_profile(storage, story_id, stats.vector)
    return StoryAssignment(article_id, story_id, assignment.method, assignment.score)


def _choose_story(
    storage: Storage, article: NewArticle, settings: Settings, stats: TermStats
) -> Assignment:
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
        return copy
    window = settings.clustering
    moment = article.published_at or article.fetched_at
    candidates = storage.open_story_candidates(
        clusterer.query_terms(stats),
        since=moment - window.window,
        first_since=moment - window.max_age,
        limit=window.candidates,
    )
    blocked = storage.split_url_story(article.canonical_url)
    candidates = [story for story in candidates if story != blocked]
    profiles = storage.story_profiles(
        candidates, clusterer.top_terms(stats.vector, clusterer.SCORED_TERMS)
    )
    placement = clusterer.place_article(
        stats.vector, profiles, join_threshold=window.join_threshold
    )
    if placement.story_id is None:
        return Assignment(None, "new")
    return Assignment(placement.story_id, clusterer.RELATED, placement.score)


def grow_profile(storage: Storage, story_id: str, added: dict[str, float]) -> None:
    """Add a report's unit vector to its story's sum (only what changed is written)."""
    before = storage.story_centroid(story_id)
    after = clusterer.grown_centroid(before, added)
    keys = (clusterer.index_keys(before), clusterer.index_keys(after))
    storage.update_story_profile(story_id, after, keys, clusterer.centroid_norm(after))


def save_profile(storage: Storage, story_id: str, centroid: dict[str, float]) -> None:
    """Store a story's summed report vectors with its index keys and length."""
    keys = clusterer.index_keys(centroid)
    storage.save_story_profile(story_id, centroid, keys, clusterer.centroid_norm(centroid))


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
    kept = storage.story_centroid(survivor)
    taken = storage.story_centroid(absorbed)
    storage.record_moves(storage.story_article_ids(absorbed), absorbed, survivor, "merge", now)
    storage.move_story_members(absorbed, survivor)
    save_profile(storage, survivor, clusterer.grown_centroid(kept, taken))
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
    storage.record_moves([row["id"]], old_story, new_story, "split", now)
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
    """Recompute a story's summed report vectors from its reports (after one left),
    weighted by today's document frequencies; copies count once."""
    members = [terms_of(row) for row in storage.story_report_terms(story_id)]
    vocabulary = {term for terms in members for term in terms}
    documents, df = storage.corpus_frequencies(vocabulary)
    idf_of = clusterer.idf_table(vocabulary, df, documents)
    centroid: dict[str, float] = {}
    for terms in members:
        centroid = clusterer.grown_centroid(centroid, clusterer.weigh(terms, idf_of))
    save_profile(storage, story_id, centroid)


def terms_of(row: Mapping[str, Any]) -> dict[str, float]:
    """An article's stored terms (a row with ``terms``, ``title`` and ``text``), or for
    one stored before they were, computed now."""
    terms: dict[str, float] | None = row["terms"]
    if terms is not None:
        return terms
    return clusterer.event_terms(row["title"], row["text"])


def count_uncounted(storage: Storage) -> int:
    """Count the articles a crash left out of the document frequencies (stored, their
    counts still in memory when it came): before a refresh stores anything."""
    rows = storage.uncounted_articles()
    for row in rows:
        storage.count_document(row["id"], terms_of(row))
    if rows:
        log.info("counted the terms of %d articles stored before an interruption", len(rows))
    return len(rows)
