"""Retention: the database must not grow without bound over a year of running.

A story ages out when none of its articles is newer than ``retention_days`` and it is
not among the newest ``feed_limit`` stories (what the published feed shows); it is
then deleted whole, with its articles' full text, index entries and aliases. Deleting
per story, never per article, keeps every published story complete. Work is done in
small transactions, so readers and the refresh job are never held up for long.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.stories import terms_of
from aggregator.storage import Storage

log = logging.getLogger(__name__)

PRUNE_BATCH = 200  # stories deleted per transaction
PRUNE_INTERVAL = timedelta(hours=6)
PRUNE_FIRST_DELAY = timedelta(minutes=10)  # let the first refresh after a start go first


@dataclass(frozen=True)
class PruneReport:
    """What one prune removed."""

    stories: int
    articles: int
    pages_freed: int

    def summary(self) -> str:
        return (
            f"pruned {self.stories} stories ({self.articles} articles);"
            f" {self.pages_freed} pages given back"
        )


def retention_cutoff(now: datetime, settings: Settings) -> datetime:
    """Articles dated before this have aged out."""
    return now - timedelta(days=settings.retention_days)


def prune(
    storage: Storage,
    settings: Settings,
    now: datetime,
    *,
    convert: bool = False,
    batch: int = PRUNE_BATCH,
) -> PruneReport:
    """Delete the stories that aged out, then compact the file.

    ``convert`` lets a database created before incremental auto-vacuum be rewritten
    once with VACUUM (slow on a big file: the admin's command does it, not the daemon).
    """
    cutoff = retention_cutoff(now, settings)
    stories = articles = 0
    while True:
        with storage.transaction():
            expired = storage.expired_story_ids(cutoff, settings.feed_limit, batch)
            forget_terms(storage, expired)
            articles += storage.delete_stories(expired)
        stories += len(expired)
        if len(expired) < batch:
            break
    pages = storage.compact(convert=convert)
    return PruneReport(stories=stories, articles=articles, pages_freed=pages)


def forget_terms(storage: Storage, story_ids: Sequence[str]) -> None:
    """Take the articles of these stories out of the clustering's document
    frequencies, so IDF keeps describing the articles still stored."""
    frequencies: Counter[str] = Counter()
    documents = 0
    for story_id in story_ids:
        for row in storage.story_member_terms(story_id):
            if row["counted"]:  # an uncounted one (a crash came between) never was
                frequencies.update(set(terms_of(row)))
                documents += 1
    if documents:
        storage.uncount_documents(frequencies, documents)


def run_prune_job(ctx: PipelineContext) -> None:
    """The daemon's periodic prune, on its own connection (the refresh job's one is
    not shared across threads); SQLite's write lock keeps the two writers in turn."""
    try:
        storage = Storage.open(ctx.config.database_path)
    except AggregatorError:
        log.exception("prune skipped: database unusable")
        return
    try:
        report = prune(storage, ctx.config.settings, ctx.clock())
        log.info(report.summary())
    except AggregatorError:
        log.exception("prune failed; will retry at the next one")
    finally:
        storage.close()
