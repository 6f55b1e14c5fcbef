"""Refreshing feeds: the only code that chains the stages.

For each feed: fetch → parse → (new entries only) fetch pages → extract → choose body
→ fingerprint → group → store, the store step being one transaction together with
the feed's fetch state. Any AggregatorError is caught per feed (and per page), logged
in plain words and recorded on the feed's row: one bad feed never stops the others.
But a database that cannot be written (a full disk: DatabaseUnwritable) stops the
refresh at once: every feed would fail the same way, not even its failure recorded.

The steps it chains live beside it: articles.py (a feed's new articles: pages,
bodies, storing each into its story), discover.py (the feed a web page advertises,
for a site's address pasted as a feed), entries.py (new and edited entries),
fetch_state.py (recording each fetch on the feed's row), next_check.py (when to fetch
next), stories.py (the grouping stage's edge) and publish.py (files, WebSub).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from aggregator import metrics
from aggregator.config import FeedSource
from aggregator.errors import (
    AggregatorError,
    DatabaseUnwritable,
    ParseError,
    Stopped,
    StorageError,
)
from aggregator.fetch import fetch_feed, host_key, polite_map
from aggregator.models import BodyFacts, FeedState, FetchResult, ParsedFeed
from aggregator.pipeline import articles as ingest
from aggregator.pipeline.articles import Page, PagePlan
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.discover import discover_feed, should_discover
from aggregator.pipeline.entries import SortedEntries, apply_edits, sort_entries
from aggregator.pipeline.fetch_state import RefreshOutcome, record_failure, record_success
from aggregator.pipeline.next_check import rss_ttl
from aggregator.pipeline.refine import refine_if_due
from aggregator.pipeline.stories import count_uncounted

log = logging.getLogger(__name__)

# Feeds whose pages are downloaded and extracted in the background while this thread
# stores others: enough to keep both cores busy, few enough to stop quickly.
FEEDS_IN_FLIGHT = 4
# Feeds fetched (and parsed) ahead of the one being begun, per fetch running at once.
FEEDS_FETCHED_AHEAD_PER_FETCH = 2


@dataclass(frozen=True)
class _Fetched:
    """A feed's fetch (and parse), done on a worker thread; parsed is None when the
    body was not parsed (a 304, or the same bytes as last time)."""

    source: FeedSource
    result: FetchResult | None = None
    parsed: ParsedFeed | None = None
    error: AggregatorError | None = None
    body: BodyFacts | None = None
    seconds: float = 0.0


def refresh_feeds(ctx: PipelineContext, sources: Sequence[FeedSource]) -> list[RefreshOutcome]:
    """Refresh the given feeds.

    Feeds are fetched (and parsed) concurrently on worker threads, at most
    ``feed_concurrency`` at once and ``per_host_limit`` per site. Each feed's new pages
    are then downloaded and extracted in the background, ``FEEDS_IN_FLIGHT`` feeds at a
    time (``page_concurrency`` pages per feed, ``page_per_host_limit`` per site over all
    of them), while this thread, which owns the database connection, stores the feeds
    whose pages are ready: fetching, extraction and storing overlap.
    """
    ctx.storage.sync_feeds(ctx.config.feeds, ctx.clock())
    count_uncounted(ctx.storage)
    last_article = ctx.storage.last_article_id()
    states = {source.url: ctx.storage.feed_state(source.url) for source in sources}
    settings = ctx.config.settings
    ctx.page_slots.limit = settings.page_per_host_limit  # feeds.yaml may have been edited
    outcomes = [_still_gone(states[s.url]) for s in sources if states[s.url].disabled_reason]
    live = [source for source in sources if not states[source.url].disabled_reason]
    with ThreadPoolExecutor(max_workers=FEEDS_IN_FLIGHT, thread_name_prefix="pages") as stage:
        try:
            outcomes += _refresh_live(ctx, live, states, stage)
        except DatabaseUnwritable:
            stage.shutdown(wait=False, cancel_futures=True)  # feeds not begun stay unfetched
            raise
    if ctx.one_shot:
        ctx.pool.release()  # no more pages to extract: the workers' memory back first
    # Counts written first: the refinement is the refresh's memory peak, and the counts
    # waiting hold the sums of up to COUNTS_WRITTEN_EVERY articles' terms.
    _write_waiting(ctx)
    if any(outcome.new_articles for outcome in outcomes):
        ctx.refinement.wait_for(last_article)
    refine_if_due(ctx)  # the open stories again, on all their reports (refine_every apart)
    # Stored as they arrived; reported in the order asked for, as before.
    order = {source.url: index for index, source in enumerate(sources)}
    return sorted(outcomes, key=lambda outcome: order[outcome.url])


def _refresh_live(
    ctx: PipelineContext,
    live: Sequence[FeedSource],
    states: dict[str, FeedState],
    stage: ThreadPoolExecutor,
) -> list[RefreshOutcome]:
    """Fetch the feeds, begin each as it comes, store those whose pages are ready."""
    settings = ctx.config.settings
    outcomes: list[RefreshOutcome] = []
    in_flight: deque[tuple[_FeedWork, Future[list[Page]]]] = deque()
    for fetched in polite_map(
        live,
        lambda source: _fetch_and_parse(ctx, source, states[source.url]),
        key=lambda source: host_key(states[source.url].permanent_url or source.url),
        concurrency=settings.feed_concurrency,
        per_host=settings.per_host_limit,
        stop=ctx.stop,
        # Fetched feeds wait here only this far ahead of the storing: parsed all at the
        # start, 2,000 feeds held this process's one core (GIL) for the first 40 s while
        # the extraction workers had few pages to work on.
        ahead=FEEDS_FETCHED_AHEAD_PER_FETCH * settings.feed_concurrency,
    ):
        if ctx.stop.is_set():  # stop between units of work; in-flight fetches end soon
            break
        begun = _begin_safely(ctx, fetched, states[fetched.source.url])
        if isinstance(begun, RefreshOutcome):
            outcomes.append(begun)
        else:
            in_flight.append((begun, stage.submit(ingest.run_pages, ctx, begun.plan)))
        outcomes += _finish_ready(ctx, in_flight, wait=len(in_flight) > FEEDS_IN_FLIGHT)
    outcomes += _finish_ready(ctx, in_flight, wait=True, drain=True)
    return outcomes


def _finish_ready(
    ctx: PipelineContext,
    in_flight: deque[tuple[_FeedWork, Future[list[Page]]]],
    *,
    wait: bool,
    drain: bool = False,
) -> list[RefreshOutcome]:
    """Store the feeds whose pages are ready, oldest first. With ``wait``, wait for the
    oldest one; with ``drain``, for all of them."""
    finished = []
    while in_flight and (wait or in_flight[0][1].done()):
        work, pages = in_flight.popleft()
        outcome = _finish_safely(ctx, work, pages)
        if outcome is not None:
            finished.append(outcome)
        wait = drain
    return finished


def _still_gone(state: FeedState) -> RefreshOutcome:
    """A feed stopped by a 410 is not fetched again, but the admin still hears of it."""
    log.info("%s: not fetched: %s (%s)", state.name, state.disabled_reason, state.url)
    return RefreshOutcome(state.url, state.name, "failed", error=state.disabled_reason or "")


def _begin_safely(
    ctx: PipelineContext, fetched: _Fetched, state: FeedState
) -> RefreshOutcome | _FeedWork:
    try:
        return _begin_feed(ctx, fetched, state)
    except DatabaseUnwritable:
        raise
    except Exception as exc:
        return _unexpected_failure(ctx, fetched.source, state, exc)


def _finish_safely(
    ctx: PipelineContext, work: _FeedWork, pages: Future[list[Page]]
) -> RefreshOutcome | None:
    """The feed's outcome; None when stopping cut its pages short (nothing is stored
    and nothing recorded, so it is fetched again at the next start, like the feeds the
    stop kept from starting)."""
    try:
        return _finish_feed(ctx, work, pages.result())
    except Stopped:
        log.info(
            "%s: stopping before its pages were fetched; not stored (%s)",
            work.state.name,
            work.state.url,
        )
        return None
    except DatabaseUnwritable:
        raise
    except Exception as exc:
        return _unexpected_failure(ctx, work.fetched.source, work.state, exc)


def _unexpected_failure(
    ctx: PipelineContext, source: FeedSource, state: FeedState, exc: Exception
) -> RefreshOutcome:
    """An unexpected error in one feed: its transaction was rolled back; record it on
    the feed like any failure, so the rest of the batch goes on."""
    log.error("%s: could not store the feed (%s)", state.name, state.url, exc_info=exc)
    error = StorageError(f"could not store the feed: {type(exc).__name__}: {exc}")
    return record_failure(ctx, state, error, ctx.clock(), ctx.interval_for(source))


def _fetch_and_parse(ctx: PipelineContext, source: FeedSource, state: FeedState) -> _Fetched:
    """Network and parsing only (no database): safe to run on a worker thread."""
    started = time.monotonic()
    fetched = _fetch_unless_unchanged(ctx, source, state)
    seconds = time.monotonic() - started
    metrics.FETCH_SECONDS.observe(seconds)
    return _Fetched(
        source, fetched.result, fetched.parsed, fetched.error, fetched.body, seconds=seconds
    )


def _fetch_unless_unchanged(ctx: PipelineContext, source: FeedSource, state: FeedState) -> _Fetched:
    """Fetch conditionally; parse only a body that differs from the last one."""
    try:
        result = fetch_feed(
            ctx.feed_client,
            state.permanent_url or source.url,
            etag=state.etag,
            last_modified=state.last_modified,
            max_bytes=ctx.config.settings.max_feed_bytes,
            listed_url=source.url,
        )
        if result.not_modified:
            return _Fetched(source, result=result)
        body = _body_facts(result.content)
        if body.content_hash == state.content_hash:  # same bytes, new ETag (or none)
            return _Fetched(source, result=result, body=body)
        try:
            parsed = ctx.parser.parse(result, now=ctx.clock())
        except ParseError:
            if not should_discover(state, result):
                raise
            # A site's address where its feed's belongs: use the feed it advertises.
            result, parsed = discover_feed(ctx, source, result)
            body = _body_facts(result.content)
        return _Fetched(source, result=result, parsed=parsed, body=body)
    except AggregatorError as exc:
        return _Fetched(source, error=exc)
    except Exception as exc:  # feedparser has no error contract: one feed, not the batch
        log.exception("unexpected error reading %s", source.url)
        error = ParseError(f"unexpected {type(exc).__name__} reading the feed", url=source.url)
        return _Fetched(source, error=error)


def _body_facts(content: bytes) -> BodyFacts:
    ttl = rss_ttl(content)
    return BodyFacts(
        content_hash=hashlib.sha256(content).hexdigest(),
        size=len(content),
        ttl_seconds=int(ttl.total_seconds()) if ttl else None,
    )


@dataclass(frozen=True)
class _FeedWork:
    """A parsed feed with new entries, waiting for its pages."""

    fetched: _Fetched
    state: FeedState
    entries: SortedEntries
    plan: PagePlan


def _begin_feed(
    ctx: PipelineContext, fetched: _Fetched, state: FeedState
) -> RefreshOutcome | _FeedWork:
    """Everything before the pages: failures and 304s are recorded at once; a parsed
    feed is sorted into new and edited entries and its page downloads planned."""
    source = fetched.source
    now = ctx.clock()
    interval = ctx.interval_for(source)
    if fetched.error is not None or fetched.result is None:
        return record_failure(ctx, state, fetched.error, now, interval)
    result = fetched.result
    if fetched.parsed is None:  # 304 or the same bytes: only the fetch state changes
        with ctx.storage.transaction():
            record_success(ctx, state, result, now, interval, body=fetched.body)
        outcome = "not_modified" if result.not_modified else "unchanged"
        metrics.FEED_FETCHES.labels(outcome).inc()
        log.info("%s: %s (%s)", source.display_name, outcome.replace("_", " "), source.url)
        moved = result.permanent_redirect or ""
        return RefreshOutcome(source.url, source.display_name, "not-modified", moved_to=moved)
    if fetched.parsed.warning:
        log.warning(
            "%s: feed is malformed but readable: %s", source.display_name, fetched.parsed.warning
        )
    sorted_entries = sort_entries(ctx, state, fetched.parsed)
    return _FeedWork(
        fetched, state, sorted_entries, ingest.plan_pages(ctx, sorted_entries.new, source)
    )


def _finish_feed(ctx: PipelineContext, work: _FeedWork, pages: list[Page]) -> RefreshOutcome:
    """Store a feed's new articles, its edits and its fetch state in one transaction."""
    fetched, state, sorted_entries = work.fetched, work.state, work.entries
    source, result, parsed = fetched.source, fetched.result, fetched.parsed
    assert result is not None and parsed is not None
    now = ctx.clock()
    with ctx.storage.transaction():
        for page in pages:
            ingest.store_article(ctx, state, page, source)
        apply_edits(ctx, state, sorted_entries, now)
        record_success(ctx, state, result, now, ctx.interval_for(source), parsed, body=fetched.body)
    _write_waiting(ctx, at_least=COUNTS_WRITTEN_EVERY)
    _count_articles(pages)
    metrics.FEED_FETCHES.labels("ok").inc()
    log.info(
        "%s: %d entries, %d new, %d edited (%s)",
        source.display_name,
        len(parsed.entries),
        len(pages),
        len(sorted_entries.changed),
        source.url,
    )
    return RefreshOutcome(
        source.url,
        source.display_name,
        "ok",
        new_articles=len(pages),
        updated_articles=len(sorted_entries.changed),
        moved_to=result.permanent_redirect or "",
    )


# Articles counted in memory (storage/frequencies.py) and queued for the search index
# before both are written during a refresh, not only at its end: bounds what a crash
# leaves to count again, the memory the waiting counts hold (the sums of their terms'
# counts), and how long a long refresh's first articles wait to be found by `?q=`.
COUNTS_WRITTEN_EVERY = 1000


def _write_waiting(ctx: PipelineContext, *, at_least: int = 0) -> None:
    """Write the document frequencies counted in memory and add the articles stored
    since to the search index, once ``at_least`` articles wait (0: whatever waits). A
    failure is logged: the articles stay counted in memory (counted again from the
    database after a restart) and queued for the index."""
    if at_least and ctx.storage.pending_counts() < at_least:
        return
    try:
        ctx.storage.flush_frequencies()
        ctx.storage.index_for_search()
    except DatabaseUnwritable:
        raise
    except StorageError:
        log.exception("writing the document frequencies or the search index failed; will retry")


def _count_articles(pages: Sequence[Page]) -> None:
    for page in pages:
        source = "refused" if page.refused else ("page" if page.article else "feed")
        metrics.ARTICLES_EXTRACTED.labels(source).inc()


def refresh_due_feeds(ctx: PipelineContext) -> list[RefreshOutcome]:
    """Refresh the enabled feeds whose next check time has come."""
    due = set(ctx.storage.due_feed_urls(ctx.clock()))
    sources = [source for source in ctx.config.enabled_feeds if source.url in due]
    if not sources:
        return []
    return refresh_feeds(ctx, sources)


def summarize(outcomes: Iterable[RefreshOutcome]) -> str:
    """One line for the log: how many feeds did what."""
    outcomes = list(outcomes)
    failed = sum(1 for outcome in outcomes if outcome.status == "failed")
    unchanged = sum(1 for outcome in outcomes if outcome.status == "not-modified")
    new = sum(outcome.new_articles for outcome in outcomes)
    return (
        f"{len(outcomes)} feeds refreshed: {new} new articles, "
        f"{unchanged} not modified, {failed} failed"
    )
