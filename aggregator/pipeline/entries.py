"""A parsed feed's entries sorted into new, edited and unchanged ones; edited entries
are updated in place (their pages are never fetched again)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from aggregator import metrics
from aggregator.extract.body import choose_body
from aggregator.models import Entry, EntryChange, FeedState, ParsedFeed
from aggregator.pipeline.context import PipelineContext
from aggregator.storage import entry_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SortedEntries:
    new: list[Entry]
    changed: list[tuple[Entry, str]]  # with the new digest
    undigested: list[tuple[Entry, str]]  # stored before digests existed


def sort_entries(ctx: PipelineContext, state: FeedState, parsed: ParsedFeed) -> SortedEntries:
    """New entries, edited ones and unchanged ones (which cost nothing more).

    A feed listing one entry twice counts it once (the first listing wins).
    """
    unique: dict[str, Entry] = {}
    for entry in parsed.entries:
        unique.setdefault(entry.key, entry)
    stored = ctx.storage.entry_digests(state.id, unique)
    sorted_entries = SortedEntries([], [], [])
    for key, entry in unique.items():
        digest = entry_digest(entry.title, entry.summary_html, entry.content_html)
        if key not in stored:
            sorted_entries.new.append(entry)
        elif stored[key] is None:
            sorted_entries.undigested.append((entry, digest))
        elif stored[key] != digest:
            sorted_entries.changed.append((entry, digest))
    return sorted_entries


def apply_edits(
    ctx: PipelineContext, state: FeedState, entries: SortedEntries, now: datetime
) -> None:
    """Update edited entries in place (never refetching their pages)."""
    for entry, digest in entries.undigested:
        ctx.storage.set_entry_digest(state.id, entry.key, digest)
    for entry, digest in entries.changed:
        body = choose_body(
            None, entry, min_chars=0, reason="entry edited in the feed", base_url=state.url
        )
        change = EntryChange(
            title=entry.title,
            summary=entry.summary_html,
            feed_content=entry.content_html,
            digest=digest,
            text=body.text,
            html=body.html,
            changed_at=now,
        )
        ctx.storage.update_entry(state.id, entry.key, change)
        metrics.ENTRIES_UPDATED.inc()
        log.info("%s: entry edited, updated in place: %s", state.name, entry.link or entry.key)
