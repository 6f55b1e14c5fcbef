"""The one body-choice policy: which text an article is stored and published with.

The extracted page wins unless it is missing, doubtful (the chain's ``Article.doubt``)
or too short next to the feed's own text; then the feed's ``content:encoded``, then
its summary, so that an item is never published empty when the feed had text. The
chosen HTML is sanitised here too (nh3, links made absolute), so every caller stores
the same thing: a new article, an edited entry, a feed with ``extract: false``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from aggregator.extract.options import ExtractOptions
from aggregator.extract.text import detect_language, html_to_text
from aggregator.models import Article, Entry, TextFeatures
from aggregator.sanitize import sanitize_html

# Extraction status recorded on each article.
EXTRACTED = "extracted"  # trafilatura's text from the article page
FALLBACK = "fallback"  # the feed's own content or summary (page failed or too short)
REFUSED = "refused"  # the page URL was blocked by the private-address guard
FAILED = "failed"  # no page text and no feed text either

# Steps of the chain that give the feed's text (the page's are in extractor.py).
STEP_FEED_CONTENT = "feed-content"
STEP_FEED_SUMMARY = "feed-summary"
STEP_NONE = "none"


@dataclass(frozen=True)
class ChosenBody:
    """The body an article is stored and published with, and where it came from."""

    text: str
    html: str  # sanitised
    status: str
    note: str = ""
    step: str = STEP_NONE


def choose_body(
    article: Article | None,
    entry: Entry,
    *,
    min_chars: int,
    reason: str = "",
    base_url: str = "",
    extract: bool = True,
    refused: bool = False,
) -> ChosenBody:
    """Prefer the extracted page; fall back to the feed's text when it is missing or short.

    ``reason`` says why there is no page (it becomes the note); ``extract=False`` (the
    feed's setting) always takes the feed's text; ``refused`` marks a page the
    private-address guard blocked. Relative links resolve against the entry's link,
    else ``base_url`` (the feed's URL).
    """
    if not extract:
        article = None
    chosen = _chosen(article, entry, min_chars, reason)
    if not extract:
        chosen = ChosenBody(chosen.text, chosen.html, chosen.status, reason, chosen.step)
    if refused:
        chosen = ChosenBody(chosen.text, chosen.html, REFUSED, reason, chosen.step)
    base = entry.link or base_url
    html = sanitize_html(chosen.html, base) if chosen.html else ""
    return ChosenBody(chosen.text, html, chosen.status, chosen.note, chosen.step)


def _chosen(article: Article | None, entry: Entry, min_chars: int, reason: str) -> ChosenBody:
    """The page's text unless it is missing, short, or not the article (a wall, a list of
    links). A page's text that only looks short for the page (``Article.looks_short``) is still
    the article's own: it gives way only to a longer feed text, never to a teaser.
    Whenever the text kept is shorter than another one at hand, the note says why."""
    feed_html, feed_step = entry.content_html, STEP_FEED_CONTENT
    if not html_to_text(feed_html):
        feed_html, feed_step = entry.summary_html, STEP_FEED_SUMMARY
    feed_text = html_to_text(feed_html)
    if article is not None and _keeps_page_text(article, feed_text, min_chars):
        note = article.note
        if article.doubt and feed_text:
            note = (
                f"the page's text looks {article.doubt}; kept it: the feed's text is "
                f"shorter ({len(feed_text)} chars)"
            )
        return ChosenBody(article.text, article.html, EXTRACTED, note, step=article.step)
    if article is not None and article.doubt:
        reason = reason or f"the page's text looks wrong: {article.doubt}"
    elif article is not None:
        reason = reason or f"extracted text too short ({len(article.text)} chars)"
    reason = reason or "no main text found on the page"
    if feed_text:
        note = f"{reason}; used the feed's text"
        if article is not None and len(feed_text) < len(article.text):
            note += f" ({len(feed_text)} chars against the page's {len(article.text)})"
        return ChosenBody(feed_text, feed_html, FALLBACK, note, step=feed_step)
    return ChosenBody("", "", FAILED, f"{reason}; the feed has no text either")


def _keeps_page_text(article: Article, feed_text: str, min_chars: int) -> bool:
    if article.doubt and feed_text:
        return article.looks_short and len(article.text) >= len(feed_text)
    return len(article.text) >= min_chars or len(article.text) > len(feed_text)


# What the grouping reads of a chosen body, from its title and text: the pipeline
# passes cluster/features.py's ``text_features`` (extraction does not know the grouping).
Describe = Callable[[str, str], TextFeatures]


@dataclass(frozen=True)
class BodyJob:
    """Everything choosing one new article's body needs, as plain data a worker process
    can receive: the entry, the feed's settings, and the page (bytes to extract, or an
    extraction already at hand), or why there is none."""

    entry: Entry
    min_chars: int
    base_url: str = ""  # the feed's URL: relative links resolve against it without a link
    language: str | None = None  # the feed's own setting, if any
    page: bytes | None = None  # the downloaded page, extracted with ``options``
    options: ExtractOptions | None = None
    article: Article | None = None  # a page extracted before (for another feed)
    reason: str = ""  # why there is no page (the note), as for ``choose_body``
    extract: bool = True
    refused: bool = False


@dataclass(frozen=True)
class PreparedBody:
    """A new article's body, chosen, with its language and what the grouping reads of
    it: all the per-article work that needs no database, done in one place."""

    body: ChosenBody
    language: str | None
    features: TextFeatures
    # The extraction's metadata (author, image, date), without its text and HTML
    # (``body`` holds them when they were kept): not sent twice between processes.
    extracted: Article | None


def prepare_body(job: BodyJob, describe: Describe) -> PreparedBody:
    """Extract the job's page (if it has one), ``choose_body``, find the body's
    language and ``describe`` it: run on an extraction worker."""
    article = job.article
    if job.page is not None:
        # Imported here: trafilatura loads in the processes that extract (the workers),
        # not in every process that imports the pipeline (half a second of every command).
        from aggregator.extract.extractor import extract_article

        article = extract_article(job.page, job.entry.link, options=job.options or ExtractOptions())
    body = choose_body(
        article,
        job.entry,
        min_chars=job.min_chars,
        reason=job.reason,
        base_url=job.base_url,
        extract=job.extract,
        refused=job.refused,
    )
    return PreparedBody(
        body=body,
        language=body_language(body, article, job.language),
        features=describe(job.entry.title, body.text),
        extracted=replace(article, text="", html="") if article is not None else None,
    )


def body_language(body: ChosenBody, article: Article | None, setting: str | None) -> str | None:
    """The extracted page's language; for the feed's text, the feed's, else detected."""
    if body.status == EXTRACTED and article is not None and article.language:
        return article.language
    return setting or detect_language(body.text)
