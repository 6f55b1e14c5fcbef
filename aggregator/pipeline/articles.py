"""One feed's new articles: their pages downloaded and extracted, each one's body
chosen, then stored into its story.

``plan_pages`` (needs the database: pages already extracted for another feed are
reused) and ``run_pages`` (network and worker processes only, so it runs beside the
storing of other feeds) come first; ``store_article`` runs inside the feed's
transaction. refresh.py chains them per feed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aggregator.cluster.duplicates import new_story_id
from aggregator.cluster.events import remember_background_shares
from aggregator.cluster.features import text_features
from aggregator.config import FeedSource
from aggregator.errors import BlockedURL, FetchError
from aggregator.extract.body import BodyJob, PreparedBody, prepare_body
from aggregator.extract.options import ExtractOptions
from aggregator.fetch import fetch_page
from aggregator.models import Article, Entry, FeedState, NewArticle, StoredPage
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.stories import add_article_to_story

log = logging.getLogger(__name__)

EXTRACT_OFF_NOTE = "extract: false for this feed; used the feed's text"
REUSED_NOTE = "reused the page extracted for another feed"


@dataclass(frozen=True)
class Page:
    """An entry with what its page gave: an extraction, or why there is none; and,
    from ``run_pages``, its body chosen with what the grouping reads of it
    (``prepared``, computed on an extraction worker)."""

    entry: Entry
    article: Article | None
    refused: bool = False
    reason: str = ""
    prepared: PreparedBody | None = None


@dataclass(frozen=True)
class PagePlan:
    """Which new entries' pages to download (no database needed to carry it out)."""

    source: FeedSource
    entries: list[Entry]
    reused: dict[str, StoredPage | None]
    to_fetch: list[Entry]


def plan_pages(ctx: PipelineContext, entries: Sequence[Entry], source: FeedSource) -> PagePlan:
    """A page another feed already led us to is reused from the database, not fetched;
    a feed with ``extract: false`` fetches no page at all."""
    if not source.extract:
        return PagePlan(source, list(entries), {}, [])
    reused = {entry.key: ctx.storage.stored_page(entry.canonical_url) for entry in entries}
    to_fetch = [entry for entry in entries if reused[entry.key] is None and entry.link]
    return PagePlan(source, list(entries), reused, to_fetch)


def run_pages(ctx: PipelineContext, plan: PagePlan) -> list[Page]:
    """Download a plan's pages, then extract each one, choose its body and compute what
    the grouping reads of it on the extraction workers (entries without a page too):
    network and worker processes only, no database, so it runs beside this thread's
    storing of other feeds, and storing receives each article ready.

    Raises Stopped when the process stops while a page waits for its site's slot: the
    feed is then not stored at all, and is fetched again at the next start.
    """
    source = plan.source
    downloads = dict(
        zip(
            (entry.key for entry in plan.to_fetch),
            _download_all(ctx, plan.to_fetch) if source.extract else [],
            strict=True,
        )
    )
    options = _extract_options(ctx, source)
    jobs = [_body_job(ctx, plan, entry, downloads, options) for entry in plan.entries]
    prepared = ctx.pool.prepare_many(jobs, text_features)
    return [
        Page(job.entry, ready.extracted, job.refused, job.reason, ready)
        for job, ready in zip(jobs, prepared, strict=True)
    ]


def _body_job(
    ctx: PipelineContext,
    plan: PagePlan,
    entry: Entry,
    downloads: dict[str, tuple[bytes | None, str]],
    options: ExtractOptions,
) -> BodyJob:
    """What choosing this entry's body needs: its downloaded page, the page extracted
    for another feed, or why there is none."""
    source = plan.source
    job = BodyJob(
        entry,
        min_chars=ctx.config.settings.min_article_chars,
        base_url=source.url,  # the feed's URL as stored (FeedState.url)
        language=source.language,
    )
    if not source.extract:
        return replace(job, reason=EXTRACT_OFF_NOTE, extract=False)
    stored = plan.reused.get(entry.key)
    if stored is not None:
        return replace(job, article=_reused_article(stored), reason=REUSED_NOTE)
    page, reason = downloads.get(entry.key, (None, "the entry has no link"))
    if not page:
        return replace(job, reason=reason, refused=reason.startswith("refused"))
    # the page's author and date are only searched for when the feed lacks them
    wanted = replace(options, want_author=not entry.author, want_date=entry.published is None)
    return replace(job, page=page, options=wanted)


def _extract_options(ctx: PipelineContext, source: FeedSource) -> ExtractOptions:
    settings = ctx.config.settings
    return ExtractOptions(
        language=source.language,
        keep=source.keep,
        drop=source.drop,
        max_bytes=settings.max_page_bytes,
        time_limit=settings.extract_time_limit.total_seconds(),
    )


def _download_all(ctx: PipelineContext, to_fetch: list[Entry]) -> list[tuple[bytes | None, str]]:
    """Every page of one feed, ``page_concurrency`` at a time; each waits for a slot on
    its site (``ctx.page_slots``, shared by all the feeds in flight)."""
    workers = max(1, min(ctx.config.settings.page_concurrency, len(to_fetch)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page") as pool:
        futures = [pool.submit(_download, ctx, entry) for entry in to_fetch]
        done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
        if not_done:  # one raised (Stopped, or a bug): the feed is not stored, so
            pool.shutdown(cancel_futures=True)  # start none of its other pages
            for future in done:
                future.result()  # raises (one of) the failures
        return [future.result() for future in futures]


def _download(ctx: PipelineContext, entry: Entry) -> tuple[bytes | None, str]:
    """The page's bytes, or None and why not (refusals start with 'refused')."""
    try:
        with ctx.page_slots.hold(entry.link, stop=ctx.stop):
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


def _reused_article(stored: StoredPage) -> Article:
    return Article(
        text=stored.text,
        html=stored.html,
        author=stored.author,
        image=stored.image,
        language=stored.language,
        step=stored.extraction_step or "precision",
    )


def store_article(ctx: PipelineContext, state: FeedState, page: Page, source: FeedSource) -> None:
    """Store one new article into its story (inside the feed's transaction). Its body
    comes prepared from ``run_pages``; a page made another way is prepared here."""
    settings = ctx.config.settings
    entry = page.entry
    prepared = page.prepared or prepare_body(
        BodyJob(
            entry,
            min_chars=settings.min_article_chars,
            base_url=state.url,
            language=source.language,
            article=page.article,
            reason=page.reason if source.extract else EXTRACT_OFF_NOTE,
            extract=source.extract,
            refused=page.refused,
        ),
        text_features,
    )
    features = prepared.features
    # the refinement weighs these terms again: their shares, without wordfreq lookups
    remember_background_shares(features.terms, features.background)
    body = prepared.body
    if body.note:
        log.info("%s: %s: %s", source.display_name, entry.link, body.note)
    now = ctx.clock()
    article = _new_article(state, entry, prepared, now)
    placed = add_article_to_story(
        ctx.storage,
        article,
        settings,
        new_story_id=new_story_id(source.url, entry.key),
    )
    if placed.method != "new":
        log.debug(
            "%s joined story %s (%s, %s)", entry.link, placed.story_id, placed.method, placed.score
        )


def _new_article(
    state: FeedState, entry: Entry, prepared: PreparedBody, now: datetime
) -> NewArticle:
    body, extracted, features = prepared.body, prepared.extracted, prepared.features
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
        html=body.html,
        image=extracted.image if extracted else None,
        published_at=entry.published or _page_date(extracted, now),
        fetched_at=now,
        extraction_status=body.status,
        extraction_note=body.note,
        signature=features.signature,
        bands=features.bands,
        terms=features.terms,
        packed_terms=features.packed_terms,
        background=features.background,
        extraction_step=body.step,
        language=prepared.language,
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
