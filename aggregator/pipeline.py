"""The pipeline: the only code that chains the stages.

For each feed: fetch → parse → (new entries only) fetch pages → extract → choose body
→ fingerprint → group → store, the store step being one transaction together with
the feed's fetch state. Any AggregatorError is caught per feed (and per page), logged
in plain words and recorded on the feed's row: one bad feed never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aggregator import clusterer
from aggregator.config import Config, FeedSource
from aggregator.errors import AggregatorError, BlockedURL, FetchError, HTTPStatusError
from aggregator.extractor import REFUSED, ChosenBody, ExtractionPool, choose_body
from aggregator.fetcher import fetch_feed, fetch_page, make_client
from aggregator.models import Article, Entry, FetchResult, ParsedFeed
from aggregator.output import write_feed_files
from aggregator.parser import parse_feed
from aggregator.sanitize import sanitize_html
from aggregator.storage import FeedState, NewArticle, Storage, StoredPage

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)
FEED_CONCURRENCY = 8


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_check_after(now: datetime, interval: timedelta, consecutive_failures: int = 0) -> datetime:
    """When to fetch a feed next: its interval, doubled per consecutive failure, capped."""
    if consecutive_failures <= 0:
        return now + interval
    backoff = interval * (1 << min(consecutive_failures, 16))
    return now + min(backoff, max(MAX_BACKOFF, interval))


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

    @classmethod
    def create(
        cls, config: Config, storage: Storage, *, workers: int | None = None
    ) -> PipelineContext:
        settings = config.settings
        return cls(
            config=config,
            storage=storage,
            feed_client=make_client(settings, guard=False),
            page_client=make_client(settings, guard=True),
            pool=ExtractionPool(settings.worker_count if workers is None else workers),
        )

    def close(self) -> None:
        self.feed_client.close()
        self.page_client.close()
        self.pool.close()


@dataclass(frozen=True)
class RefreshOutcome:
    """What one feed's refresh did, for logs and the CLI summary."""

    url: str
    name: str
    status: str  # "ok", "not-modified" or "failed"
    new_articles: int = 0
    error: str = ""


@dataclass(frozen=True)
class _Fetched:
    source: FeedSource
    result: FetchResult | None = None
    parsed: ParsedFeed | None = None
    error: AggregatorError | None = None


@dataclass(frozen=True)
class _Page:
    """An entry with what its page gave: an extraction, or why there is none."""

    entry: Entry
    article: Article | None
    refused: bool = False
    reason: str = ""


def refresh_feeds(ctx: PipelineContext, sources: Sequence[FeedSource]) -> list[RefreshOutcome]:
    """Refresh the given feeds. Feeds are fetched concurrently; each is stored in turn
    by this thread, which owns the database connection."""
    ctx.storage.sync_feeds(ctx.config.feeds, ctx.clock())
    states = {source.url: ctx.storage.feed_state(source.url) for source in sources}
    outcomes: list[RefreshOutcome] = []
    with ThreadPoolExecutor(max_workers=FEED_CONCURRENCY, thread_name_prefix="fetch") as pool:
        fetches = [
            pool.submit(_fetch_and_parse, ctx, source, states[source.url]) for source in sources
        ]
        for future in fetches:
            if ctx.stop.is_set():  # stop between units of work; in-flight fetches end soon
                future.cancel()
                continue
            fetched = future.result()
            outcomes.append(_store_feed(ctx, fetched, states[fetched.source.url]))
    return outcomes


def _fetch_and_parse(ctx: PipelineContext, source: FeedSource, state: FeedState) -> _Fetched:
    """Network and parsing only (no database): safe to run on a worker thread."""
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
        return _Fetched(source, result=result, parsed=parse_feed(result, now=ctx.clock()))
    except AggregatorError as exc:
        return _Fetched(source, error=exc)


def _store_feed(ctx: PipelineContext, fetched: _Fetched, state: FeedState) -> RefreshOutcome:
    source = fetched.source
    name = source.display_name
    now = ctx.clock()
    interval = ctx.config.interval_for(source)
    if fetched.error is not None or fetched.result is None:
        return _record_failure(ctx, state, fetched.error, now, interval)
    result = fetched.result
    if fetched.parsed is None:  # 304: only the fetch state changes
        with ctx.storage.transaction():
            _record_success(ctx, state, result, now, interval)
        log.info("%s: not modified (%s)", name, source.url)
        return RefreshOutcome(source.url, name, "not-modified")
    if fetched.parsed.warning:
        log.warning("%s: feed is malformed but readable: %s", name, fetched.parsed.warning)
    new_entries = _new_entries(ctx, state, fetched.parsed)
    pages = _extract_pages(ctx, new_entries)
    with ctx.storage.transaction():
        for page in pages:
            _store_article(ctx, state, page, source)
        _record_success(ctx, state, result, now, interval, fetched.parsed)
    log.info(
        "%s: %d entries, %d new (%s)", name, len(fetched.parsed.entries), len(pages), source.url
    )
    return RefreshOutcome(source.url, name, "ok", new_articles=len(pages))


def _record_failure(
    ctx: PipelineContext,
    state: FeedState,
    error: AggregatorError | None,
    now: datetime,
    interval: timedelta,
) -> RefreshOutcome:
    message = str(error) if error else "unknown error"
    status = error.status if isinstance(error, HTTPStatusError) else None
    failures = state.consecutive_failures + 1
    next_check = next_check_after(now, interval, failures)
    ctx.storage.record_fetch_failure(
        state.id, now=now, next_check=next_check, error=message, status=status
    )
    log.warning(
        "%s: failed (%s); attempt %d, next try at %s (%s)",
        state.name,
        message,
        failures,
        next_check.isoformat(timespec="minutes"),
        state.url,
    )
    return RefreshOutcome(state.url, state.name, "failed", error=message)


def _record_success(
    ctx: PipelineContext,
    state: FeedState,
    result: FetchResult,
    now: datetime,
    interval: timedelta,
    parsed: ParsedFeed | None = None,
) -> None:
    if result.permanent_redirect:
        log.warning(
            "%s: feed moved permanently to %s; update feeds.yaml",
            state.name,
            result.permanent_redirect,
        )
    ctx.storage.record_fetch_success(
        state.id,
        now=now,
        next_check=next_check_after(now, interval),
        status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        title=parsed.title if parsed else None,
        site_url=parsed.site_url if parsed else None,
        permanent_url=result.permanent_redirect,
    )


def _new_entries(ctx: PipelineContext, state: FeedState, parsed: ParsedFeed) -> list[Entry]:
    """Entries not stored yet; a feed listing one entry twice counts it once."""
    known = ctx.storage.known_entry_keys(state.id, (entry.key for entry in parsed.entries))
    fresh: dict[str, Entry] = {}
    for entry in parsed.entries:
        if entry.key not in known and entry.key not in fresh:
            fresh[entry.key] = entry
    return list(fresh.values())


def _extract_pages(ctx: PipelineContext, entries: Sequence[Entry]) -> list[_Page]:
    """Fetch the new entries' pages concurrently, then extract them on the worker pool.

    A page another feed already led us to is reused from the database, not fetched.
    """
    reused = {entry.key: ctx.storage.stored_page(entry.canonical_url) for entry in entries}
    to_fetch = [entry for entry in entries if reused[entry.key] is None and entry.link]
    workers = max(1, min(ctx.config.settings.page_concurrency, len(to_fetch)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page") as pool:
        downloads = list(pool.map(lambda entry: _download(ctx, entry), to_fetch))
    fetched = [(entry, body) for entry, (body, _) in zip(to_fetch, downloads, strict=True) if body]
    articles = ctx.pool.extract_many((body, entry.link) for entry, body in fetched)
    extracted = {entry.key: article for (entry, _), article in zip(fetched, articles, strict=True)}
    failures = dict(zip((entry.key for entry in to_fetch), downloads, strict=True))
    return [_page_for(entry, reused[entry.key], extracted, failures) for entry in entries]


def _download(ctx: PipelineContext, entry: Entry) -> tuple[bytes | None, str]:
    """The page's bytes, or None and why not (refusals start with 'refused')."""
    try:
        result = fetch_page(
            ctx.page_client, entry.link, max_bytes=ctx.config.settings.max_page_bytes
        )
    except BlockedURL as exc:
        log.warning("refused to fetch %s: %s", entry.link, exc)
        return None, f"refused: {exc}"
    except FetchError as exc:
        log.info("could not fetch article page %s: %s", entry.link, exc)
        return None, f"page fetch failed: {exc}"
    return result.content, ""


def _page_for(
    entry: Entry,
    stored: StoredPage | None,
    extracted: dict[str, Article | None],
    failures: dict[str, tuple[bytes | None, str]],
) -> _Page:
    if stored is not None:
        article = Article(
            text=stored.text, html=stored.html, author=stored.author, image=stored.image
        )
        return _Page(entry, article, reason="reused the page extracted for another feed")
    _, reason = failures.get(entry.key, (None, "the entry has no link"))
    return _Page(
        entry, extracted.get(entry.key), refused=reason.startswith("refused"), reason=reason
    )


def _store_article(ctx: PipelineContext, state: FeedState, page: _Page, source: FeedSource) -> None:
    settings = ctx.config.settings
    entry = page.entry
    body = choose_body(
        page.article, entry, min_chars=settings.min_article_chars, reason=page.reason
    )
    if page.refused:
        body = ChosenBody(body.text, body.html, REFUSED, page.reason)
    if body.note:
        log.info("%s: %s: %s", source.display_name, entry.link, body.note)
    fingerprint = clusterer.fingerprint(body.text)
    now = ctx.clock()
    article = _new_article(state, entry, body, page.article, fingerprint, now)
    candidates = ctx.storage.duplicate_candidates(
        canonical_url=entry.canonical_url,
        guid=entry.guid,
        bands=article.bands,
        since=now - settings.duplicate_window,
    )
    assignment = clusterer.assign_story(
        canonical_url=entry.canonical_url,
        guid=entry.guid,
        signature=article.signature,
        candidates=candidates,
        threshold=settings.duplicate_threshold,
    )
    story_id = clusterer.new_story_id(source.url, entry.key)
    ctx.storage.add_article(article, assignment, story_id)


def _new_article(
    state: FeedState,
    entry: Entry,
    body: ChosenBody,
    extracted: Article | None,
    fingerprint: clusterer.Fingerprint | None,
    now: datetime,
) -> NewArticle:
    base = entry.link or state.url
    return NewArticle(
        feed_id=state.id,
        entry_key=entry.key,
        guid=entry.guid,
        url=entry.link,
        canonical_url=entry.canonical_url,
        title=entry.title,
        author=entry.author or (extracted.author if extracted else None),
        summary=entry.summary_html,
        feed_content=entry.content_html,
        text=body.text,
        html=sanitize_html(body.html, base) if body.html else "",
        image=extracted.image if extracted else None,
        published_at=entry.published or _page_date(extracted, now),
        fetched_at=now,
        extraction_status=body.status,
        extraction_note=body.note,
        signature=fingerprint.signature if fingerprint else None,
        bands=fingerprint.bands if fingerprint else (),
    )


def _page_date(article: Article | None, now: datetime) -> datetime | None:
    """The page's own date when the feed gives none, never in the future."""
    if article is None or not article.date:
        return None
    try:
        moment = datetime.fromisoformat(article.date)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment, now)


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
    ``output_dir`` is set, the feed files are also written there atomically."""
    directory = ctx.config.output_directory
    if directory is not None:
        for path in write_feed_files(ctx.storage, ctx.config.settings, directory):
            log.info("wrote %s", path)
