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

from aggregator.cluster import duplicates
from aggregator.cluster.duplicates import Fingerprint, new_story_id
from aggregator.config import FeedSource
from aggregator.errors import BlockedURL, FetchError
from aggregator.extract.body import EXTRACTED, ChosenBody, choose_body
from aggregator.extract.options import ExtractOptions
from aggregator.extract.text import detect_language
from aggregator.fetch import fetch_page
from aggregator.models import Article, Entry, FeedState, NewArticle, StoredPage
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.stories import add_article_to_story

log = logging.getLogger(__name__)

EXTRACT_OFF_NOTE = "extract: false for this feed; used the feed's text"


@dataclass(frozen=True)
class Page:
    """An entry with what its page gave: an extraction, or why there is none."""

    entry: Entry
    article: Article | None
    refused: bool = False
    reason: str = ""


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
    """Download and extract a plan's pages: network and worker processes only, no
    database, so it runs beside this thread's storing of other feeds.

    Raises Stopped when the process stops while a page waits for its site's slot: the
    feed is then not stored at all, and is fetched again at the next start.
    """
    if not plan.source.extract:
        return [Page(entry, None, reason="extract: false") for entry in plan.entries]
    to_fetch = plan.to_fetch
    downloads = _download_all(ctx, to_fetch)
    fetched = [(entry, body) for entry, (body, _) in zip(to_fetch, downloads, strict=True) if body]
    options = _extract_options(ctx, plan.source)
    articles = ctx.pool.extract_many(
        ((body, entry.link) for entry, body in fetched),
        # the page's author and date are only searched for when the feed lacks them
        (
            replace(options, want_author=not entry.author, want_date=entry.published is None)
            for entry, _ in fetched
        ),
    )
    extracted = {entry.key: article for (entry, _), article in zip(fetched, articles, strict=True)}
    failures = dict(zip((entry.key for entry in to_fetch), downloads, strict=True))
    return [
        _page_for(entry, plan.reused.get(entry.key), extracted, failures) for entry in plan.entries
    ]


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


def _page_for(
    entry: Entry,
    stored: StoredPage | None,
    extracted: dict[str, Article | None],
    failures: dict[str, tuple[bytes | None, str]],
) -> Page:
    if stored is not None:
        article = Article(
            text=stored.text,
            html=stored.html,
            author=stored.author,
            image=stored.image,
            language=stored.language,
            step=stored.extraction_step or "precision",
        )
        return Page(entry, article, reason="reused the page extracted for another feed")
    _, reason = failures.get(entry.key, (None, "the entry has no link"))
    return Page(
        entry, extracted.get(entry.key), refused=reason.startswith("refused"), reason=reason
    )


def store_article(ctx: PipelineContext, state: FeedState, page: Page, source: FeedSource) -> None:
    settings = ctx.config.settings
    entry = page.entry
    body = choose_body(
        page.article,
        entry,
        min_chars=settings.min_article_chars,
        reason=page.reason if source.extract else EXTRACT_OFF_NOTE,
        base_url=state.url,
        extract=source.extract,
        refused=page.refused,
    )
    if body.note:
        log.info("%s: %s: %s", source.display_name, entry.link, body.note)
    fingerprint = duplicates.fingerprint(body.text)
    now = ctx.clock()
    article = _new_article(state, entry, body, page.article, fingerprint, now)
    article = replace(
        article,
        extraction_step=body.step,
        language=_article_language(body, page.article, source),
    )
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
    state: FeedState,
    entry: Entry,
    body: ChosenBody,
    extracted: Article | None,
    fingerprint: Fingerprint | None,
    now: datetime,
) -> NewArticle:
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
        signature=fingerprint.signature if fingerprint else None,
        bands=fingerprint.bands if fingerprint else (),
    )


def _article_language(body: ChosenBody, article: Article | None, source: FeedSource) -> str | None:
    """The extracted page's language; for the feed's text, the feed's, else detected."""
    if body.status == EXTRACTED and article is not None and article.language:
        return article.language
    return source.language or detect_language(body.text)


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
