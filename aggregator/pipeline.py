"""The pipeline: the only code that chains the stages.

For each feed: fetch → parse → (new entries only) fetch pages → extract → choose body
→ fingerprint → group → store, the store step being one transaction together with
the feed's fetch state. Any AggregatorError is caught per feed (and per page), logged
in plain words and recorded on the feed's row: one bad feed never stops the others.
The per-article steps (pages, bodies, storing into a story) are in ingest.py.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aggregator import ingest, metrics
from aggregator.config import Config, FeedSource
from aggregator.errors import (
    AggregatorError,
    FetchError,
    HTTPStatusError,
    ParseError,
    Stopped,
    StorageError,
)
from aggregator.extractor import (
    ExtractionPool,
    choose_body,
)
from aggregator.fetcher import (
    HostSlots,
    fetch_feed,
    host_key,
    make_client,
    ping_websub_hub,
    polite_map,
)
from aggregator.ingest import Page, PagePlan
from aggregator.models import Entry, FetchResult, ParsedFeed
from aggregator.output import write_feed_files
from aggregator.parse_pool import ParsePool
from aggregator.publisher import FEED_PATHS
from aggregator.sanitize import sanitize_html
from aggregator.schedule import (
    SchedulePolicy,
    ServerHints,
    backoff_delay,
    hints_from_headers,
    next_fetch_after_failure,
    next_fetch_after_success,
    rss_ttl,
)
from aggregator.storage import (
    BodyFacts,
    EntryChange,
    FeedState,
    Storage,
    entry_digest,
)
from aggregator.stories_refine import refine_open_stories

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# Feeds whose pages are downloaded and extracted in the background while this thread
# stores others: enough to keep both cores busy, few enough to stop quickly.
FEEDS_IN_FLIGHT = 4
MAX_BACKOFF = timedelta(hours=24)
GONE_STATUS = 410


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_check_after(now: datetime, interval: timedelta, consecutive_failures: int = 0) -> datetime:
    """When to fetch a feed next, without hints or jitter (see aggregator.schedule)."""
    return now + backoff_delay(interval, consecutive_failures, MAX_BACKOFF)


@dataclass
class PipelineContext:
    """Everything a refresh needs, built once per process."""

    config: Config
    storage: Storage
    feed_client: httpx.Client
    page_client: httpx.Client
    pool: ExtractionPool
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utc_now
    rand: Callable[[], float] = random.random  # jitter; tests pass a constant
    parser: ParsePool = field(default_factory=lambda: ParsePool(0))  # big feeds off-thread
    published_version: str = ""  # content version the WebSub hub last heard about
    # Article page downloads in flight per site, over every feed; its limit is set from
    # page_per_host_limit at the start of each refresh.
    page_slots: HostSlots = field(default_factory=lambda: HostSlots(1))

    @property
    def policy(self) -> SchedulePolicy:
        settings = self.config.settings
        return SchedulePolicy(max_backoff=settings.max_backoff, jitter=settings.jitter)

    @classmethod
    def create(
        cls, config: Config, storage: Storage, *, workers: int | None = None
    ) -> PipelineContext:
        settings = config.settings
        processes = settings.worker_count if workers is None else workers
        return cls(
            config=config,
            storage=storage,
            feed_client=make_client(settings, guard=False),
            page_client=make_client(settings, guard=True),
            pool=ExtractionPool(processes),
            parser=ParsePool(processes),
            page_slots=HostSlots(settings.page_per_host_limit),
        )

    def interval_for(self, source: FeedSource) -> timedelta:
        """The feed's interval in the config in force now: feeds.yaml may have been
        reloaded while this refresh ran (issue 7), and the edit must win."""
        live = next((feed for feed in self.config.feeds if feed.url == source.url), source)
        return self.config.interval_for(live)

    def close(self) -> None:
        self.feed_client.close()
        self.page_client.close()
        self.pool.close()
        self.parser.close()


@dataclass(frozen=True)
class RefreshOutcome:
    """What one feed's refresh did, for logs and the CLI summary."""

    url: str
    name: str
    status: str  # "ok", "not-modified" or "failed"
    new_articles: int = 0
    error: str = ""
    updated_articles: int = 0
    moved_to: str = ""  # a permanent redirect the admin should copy into feeds.yaml


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
    states = {source.url: ctx.storage.feed_state(source.url) for source in sources}
    settings = ctx.config.settings
    ctx.page_slots.limit = settings.page_per_host_limit  # feeds.yaml may have been edited
    outcomes = [_still_gone(states[s.url]) for s in sources if states[s.url].disabled_reason]
    live = [source for source in sources if not states[source.url].disabled_reason]
    in_flight: deque[tuple[_FeedWork, Future[list[Page]]]] = deque()
    with ThreadPoolExecutor(max_workers=FEEDS_IN_FLIGHT, thread_name_prefix="pages") as stage:
        for fetched in polite_map(
            live,
            lambda source: _fetch_and_parse(ctx, source, states[source.url]),
            key=lambda source: host_key(states[source.url].permanent_url or source.url),
            concurrency=settings.feed_concurrency,
            per_host=settings.per_host_limit,
            stop=ctx.stop,
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
    if any(outcome.new_articles for outcome in outcomes) and not ctx.stop.is_set():
        refine_window(ctx)
    # Stored as they arrived; reported in the order asked for, as before.
    order = {source.url: index for index, source in enumerate(sources)}
    return sorted(outcomes, key=lambda outcome: order[outcome.url])


def refine_window(ctx: PipelineContext) -> None:
    """Cluster the open stories' reports again now that the refresh's articles are in
    (stories_refine.py): one transaction, after the feeds' own."""
    started = time.perf_counter()
    with ctx.storage.transaction():
        plan = refine_open_stories(ctx.storage, ctx.clock(), ctx.config.settings)
    log.info(
        "refined the open stories in %.2f s: %d reports moved, %d stories merged, %d new",
        time.perf_counter() - started, len(plan.moves), len(plan.aliases), len(plan.created),
    )  # fmt: skip


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
    except Exception as exc:
        return _unexpected_failure(ctx, work.fetched.source, work.state, exc)


def _unexpected_failure(
    ctx: PipelineContext, source: FeedSource, state: FeedState, exc: Exception
) -> RefreshOutcome:
    """An unexpected error in one feed: its transaction was rolled back; record it on
    the feed like any failure, so the rest of the batch goes on."""
    log.error("%s: could not store the feed (%s)", state.name, state.url, exc_info=exc)
    error = StorageError(f"could not store the feed: {type(exc).__name__}: {exc}")
    return _record_failure(ctx, state, error, ctx.clock(), ctx.interval_for(source))


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
        )
        if result.not_modified:
            return _Fetched(source, result=result)
        body = _body_facts(result.content)
        if body.content_hash == state.content_hash:  # same bytes, new ETag (or none)
            return _Fetched(source, result=result, body=body)
        parsed = ctx.parser.parse(result, now=ctx.clock())
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
    entries: _SortedEntries
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
        return _record_failure(ctx, state, fetched.error, now, interval)
    result = fetched.result
    if fetched.parsed is None:  # 304 or the same bytes: only the fetch state changes
        with ctx.storage.transaction():
            _record_success(ctx, state, result, now, interval, body=fetched.body)
        outcome = "not_modified" if result.not_modified else "unchanged"
        metrics.FEED_FETCHES.labels(outcome).inc()
        log.info("%s: %s (%s)", source.display_name, outcome.replace("_", " "), source.url)
        moved = result.permanent_redirect or ""
        return RefreshOutcome(source.url, source.display_name, "not-modified", moved_to=moved)
    if fetched.parsed.warning:
        log.warning(
            "%s: feed is malformed but readable: %s", source.display_name, fetched.parsed.warning
        )
    sorted_entries = _sort_entries(ctx, state, fetched.parsed)
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
        _apply_edits(ctx, state, sorted_entries, now)
        _record_success(
            ctx, state, result, now, ctx.interval_for(source), parsed, body=fetched.body
        )
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


def _count_articles(pages: Sequence[Page]) -> None:
    for page in pages:
        source = "refused" if page.refused else ("page" if page.article else "feed")
        metrics.ARTICLES_EXTRACTED.labels(source).inc()


def _record_failure(
    ctx: PipelineContext,
    state: FeedState,
    error: AggregatorError | None,
    now: datetime,
    interval: timedelta,
) -> RefreshOutcome:
    message = str(error) if error else "unknown error"
    status = error.status if isinstance(error, HTTPStatusError) else None
    if status == GONE_STATUS:
        return _record_gone(ctx, state, message, now)
    failures = state.consecutive_failures + 1
    hints = ServerHints()
    if isinstance(error, HTTPStatusError):
        hints = hints_from_headers(error.headers, now, status=error.status)
    next_check = next_fetch_after_failure(now, interval, failures, hints, ctx.policy, ctx.rand())
    ctx.storage.record_fetch_failure(
        state.id, now=now, next_check=next_check, error=message, status=status
    )
    metrics.FEED_FETCHES.labels("failed").inc()
    log.warning(
        "%s: failed (%s); attempt %d, next try at %s (%s)",
        state.name,
        message,
        failures,
        next_check.isoformat(timespec="minutes"),
        state.url,
    )
    return RefreshOutcome(state.url, state.name, "failed", error=message)


def _record_gone(
    ctx: PipelineContext, state: FeedState, message: str, now: datetime
) -> RefreshOutcome:
    """410 Gone: the publisher says the feed will never come back; stop polling it."""
    reason = f"{message}: polling stopped; fix feeds.yaml or run `aggregator feeds --reset`"
    ctx.storage.record_fetch_failure(
        state.id,
        now=now,
        next_check=None,
        error=message,
        status=GONE_STATUS,
        disabled_reason=reason,
    )
    metrics.FEED_FETCHES.labels("gone").inc()
    log.error("%s: %s (%s)", state.name, reason, state.url)
    return RefreshOutcome(state.url, state.name, "failed", error=reason)


def _record_success(
    ctx: PipelineContext,
    state: FeedState,
    result: FetchResult,
    now: datetime,
    interval: timedelta,
    parsed: ParsedFeed | None = None,
    body: BodyFacts | None = None,
) -> None:
    if result.permanent_redirect:
        log.warning(
            "%s: feed moved permanently to %s; update feeds.yaml",
            state.name,
            result.permanent_redirect,
        )
    ttl_seconds = body.ttl_seconds if body else state.ttl_seconds
    ttl = timedelta(seconds=ttl_seconds) if ttl_seconds else None
    hints = hints_from_headers(result.headers, now, status=result.status, ttl=ttl)
    ctx.storage.record_fetch_success(
        state.id,
        now=now,
        next_check=next_fetch_after_success(now, interval, hints, ctx.policy, ctx.rand()),
        status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        title=parsed.title if parsed else None,
        site_url=parsed.site_url if parsed else None,
        permanent_url=result.permanent_redirect,
        body=body,
        bytes_saved=(state.body_bytes or 0) if result.not_modified else 0,
    )


@dataclass(frozen=True)
class _SortedEntries:
    new: list[Entry]
    changed: list[tuple[Entry, str]]  # with the new digest
    undigested: list[tuple[Entry, str]]  # stored before digests existed


def _sort_entries(ctx: PipelineContext, state: FeedState, parsed: ParsedFeed) -> _SortedEntries:
    """New entries, edited ones and unchanged ones (which cost nothing more).

    A feed listing one entry twice counts it once (the first listing wins).
    """
    unique: dict[str, Entry] = {}
    for entry in parsed.entries:
        unique.setdefault(entry.key, entry)
    stored = ctx.storage.entry_digests(state.id, unique)
    sorted_entries = _SortedEntries([], [], [])
    for key, entry in unique.items():
        digest = entry_digest(entry.title, entry.summary_html, entry.content_html)
        if key not in stored:
            sorted_entries.new.append(entry)
        elif stored[key] is None:
            sorted_entries.undigested.append((entry, digest))
        elif stored[key] != digest:
            sorted_entries.changed.append((entry, digest))
    return sorted_entries


def _apply_edits(
    ctx: PipelineContext, state: FeedState, entries: _SortedEntries, now: datetime
) -> None:
    """Update edited entries in place (never refetching their pages)."""
    for entry, digest in entries.undigested:
        ctx.storage.set_entry_digest(state.id, entry.key, digest)
    for entry, digest in entries.changed:
        body = choose_body(None, entry, min_chars=0, reason="entry edited in the feed")
        html = sanitize_html(body.html, entry.link or state.url) if body.html else ""
        change = EntryChange(
            title=entry.title,
            summary=entry.summary_html,
            feed_content=entry.content_html,
            digest=digest,
            text=body.text,
            html=html,
            changed_at=now,
        )
        ctx.storage.update_entry(state.id, entry.key, change)
        metrics.ENTRIES_UPDATED.inc()
        log.info("%s: entry edited, updated in place: %s", state.name, entry.link or entry.key)


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


def publish(ctx: PipelineContext) -> None:
    """The publish step: the server renders from the database on change; when
    ``output_dir`` is set, the feed files (and named slices) are also written there
    atomically; when ``websub_hub`` is set, the hub is told the feeds changed."""
    directory = ctx.config.output_directory
    if directory is not None:
        written = write_feed_files(ctx.storage, ctx.config.settings, directory, ctx.config.outputs)
        for path in written:
            log.info("wrote %s", path)
    notify_websub_hub(ctx)


def notify_websub_hub(ctx: PipelineContext) -> None:
    """Ping the WebSub hub when what the feeds show changed since the last ping."""
    settings = ctx.config.settings
    if not settings.websub_hub:
        return
    version = ctx.storage.content_version()
    if version == ctx.published_version:
        return
    paths = [*FEED_PATHS.values(), *(output.path for output in ctx.config.outputs)]
    try:
        ping_websub_hub(
            ctx.feed_client, settings.websub_hub, [settings.base_url + p for p in paths]
        )
    except FetchError as exc:
        log.warning("WebSub hub %s not notified (next publish retries): %s", exc.url, exc)
        return
    ctx.published_version = version
    log.info("notified WebSub hub %s of %d feeds", settings.websub_hub, len(paths))
