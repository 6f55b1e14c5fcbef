"""Extract an article page's main text with trafilatura, and decide which body to keep.

``extract_article`` is pure CPU work over bytes (no IO), so it can run in worker
processes: trafilatura holds the GIL, threads would not use the second core.

The chain, each step recorded on the article (``Article.step``, then ``ChosenBody.step``):

1. ``precision``: trafilatura favouring precision. On news pages it keeps the same
   article text as the default while leaving out more related-story boxes and
   teasers (measured in ``bench/extract_eval.py``). trafilatura's own fallbacks
   (readability, jusText) run inside this step, but only when the pass without them
   found little next to the page's text (``_is_substantial``): they double its cost.
2. ``recall``: when step 1 gives nothing or something implausible (too short for the
   page, mostly link text, a paywall or cookie wall), a second pass favouring recall,
   kept if it is plausible or at least longer.
3. ``feed-content`` / ``feed-summary`` (``choose_body``): the feed's own text, which is
   the floor: an item is never published empty when the feed had text. A kept text
   that looks implausible (``_doubt``: mostly link text, a paywall or cookie wall, a
   stub) gives way to it; one that only looks short for the page, to a longer one.

Whatever step won, paragraphs of the same article that the page split into sibling
blocks (ad breaks) are appended, and the article's inline images are put back into
the HTML: the text pass runs without images, because trafilatura's image mode also
keeps captions and picture-led teaser boxes, which readers do not want in the text.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

import lxml.etree
import lxml.html
import py3langid
import trafilatura
from htmldate import find_date
from lxml.cssselect import CSSSelector
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.metadata import (
    examine_meta,
    extract_meta_json,
    extract_sitename,
    extract_title,
)
from trafilatura.settings import Document, set_date_params
from trafilatura.utils import load_html

from aggregator.errors import ExtractTimeout
from aggregator.extract_author import find_author
from aggregator.extract_markup import MAX_LINK_SHARE, restore_markup
from aggregator.models import Article, Entry

log = logging.getLogger(__name__)

# Extraction status recorded on each article.
EXTRACTED = "extracted"  # trafilatura's text from the article page
FALLBACK = "fallback"  # the feed's own content or summary (page failed or too short)
REFUSED = "refused"  # the page URL was blocked by the private-address guard
FAILED = "failed"  # no page text and no feed text either

# The step of the chain that produced the text (stored as ``extraction_step``).
STEP_PRECISION = "precision"
STEP_RECALL = "recall"
STEP_SELECTORS = "selectors"  # the feed's `keep` selectors chose the article's blocks
STEP_FEED_CONTENT = "feed-content"
STEP_FEED_SUMMARY = "feed-summary"
STEP_NONE = "none"

_TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,  # comment threads are not the article
    "include_tables": True,  # order-of-battle and budget tables are content here
    "include_images": False,  # images are put back by extract_markup (see the docstring)
    "include_links": False,  # with favor_precision it drops text around links; put back later
    "include_formatting": True,  # headings, bold, lists: the structured HTML
    "deduplicate": False,  # its cache is per process and would drop a re-extracted page
}

# Words that, in a short extraction, mean we got a wall instead of the article.
_WALL_WORDS = re.compile(
    r"\b(subscribe|subscription|sign in|log in|cookies?|consent|enable javascript|"
    r"paywall|already a subscriber|create an account|register to)\b",
    re.IGNORECASE,
)
_MIN_PLAUSIBLE_CHARS = 200  # below this, an extraction from a page is a stub
_MIN_SHARE_OF_PAGE = 0.15  # ... or below this share of the page's paragraph text
_SHORT_FOR_THE_PAGE = "too short for the page"
# Above both, the fast pass (no fallbacks) is kept: see _is_substantial.
_SUBSTANTIAL_CHARS = 500
_SUBSTANTIAL_SHARE = 0.3


@dataclass(frozen=True)
class ExtractOptions:
    """Per-feed extraction options (feeds.yaml), plus the service-wide limits."""

    language: str | None = None  # the feed's declared language (ISO 639-1)
    keep: tuple[str, ...] = ()  # CSS selectors of the article's own blocks
    drop: tuple[str, ...] = ()  # CSS selectors removed before extraction
    max_bytes: int = 5_000_000  # page HTML beyond this is cut before parsing
    time_limit: float = 0.0  # seconds per page in a worker process; 0 = no limit
    # The page's author and date are looked for only when the feed lacks them: the
    # searches are a third of an extraction's CPU, and the feed's own value wins.
    want_author: bool = True
    want_date: bool = True


DEFAULT_OPTIONS = ExtractOptions()


def extract_article(
    page: bytes | str, url: str, *, options: ExtractOptions = DEFAULT_OPTIONS
) -> Article | None:
    """Run the extraction chain on one page. ``None`` is a normal outcome: no main text."""
    try:
        with _time_limit(options.time_limit):
            return _extract(page[: options.max_bytes], url, options)
    except ExtractTimeout:
        log.warning("extraction of %s passed %g s; skipped", url, options.time_limit)
        return None
    except Exception:  # trafilatura has no error contract; a bad page must not kill a worker
        log.warning("extraction failed on %s", url, exc_info=True)
        return None


def _base_url(tree: Any, url: str) -> str:
    """What the page's relative links are relative to: its ``<base href>``, else its URL."""
    for element in tree.iter("base"):
        href: str = element.get("href") or ""
        if href.strip():
            return _joined(url, href) or url
    return url


_ABSOLUTE = ("http://", "https://")


def _resolve_links(body: Any, base: str) -> None:
    """Make every ``href`` and ``src`` of the extracted body absolute against ``base``.

    Only the body's links are published, and trafilatura itself does not read them
    (it runs without links), so they are resolved here, after extraction: a page has
    hundreds of links and the body a handful. A URL that cannot be joined is dropped.
    """
    for element in body.xpath(".//*[@href or @src]"):
        for attribute in ("href", "src"):
            value = element.get(attribute)
            if value is None or value.startswith(_ABSOLUTE):
                continue
            try:
                element.set(attribute, urljoin(base, value.strip()))
            except ValueError:
                del element.attrib[attribute]


def _extract(page: bytes | str, url: str, options: ExtractOptions) -> Article | None:
    tree = load_html(page)
    if tree is None:
        return None
    base = _base_url(tree, url)
    meta = _page_metadata(tree, url, options)
    _drop_blocks(tree, options.drop)
    source, first_step = _kept_blocks(tree, options.keep), STEP_PRECISION
    if source is not tree:
        first_step = STEP_SELECTORS
    facts = _PageFacts(_paragraph_chars(tree), _anchor_texts(tree))
    first = _run_trafilatura(source, url, options, favor="precision", fast=True)
    if not _is_substantial(first, facts):
        # trafilatura's fallbacks (readability, jusText) cost as much again as its own
        # pass and change the result only when that pass found little next to the
        # page's text (6 of the 181 Zyte pages, all below a quarter of it)
        first = _run_trafilatura(source, url, options, favor="precision")
    chosen, step = first, first_step
    doubt = _doubt(first, facts)
    if doubt:
        second = _run_trafilatura(source, url, options, favor="recall")
        second_doubt = _doubt(second, facts)
        if second is not None and (
            not second_doubt or first is None or len(second[1]) > len(first[1])
        ):
            chosen, step, doubt = second, STEP_RECALL, second_doubt
    if chosen is None:
        return None
    _trim_trailing_links(chosen[2], facts.anchor_texts)
    _trim_leading_title(chosen[2], meta.title)
    article = _article(chosen, meta, tree, base, step, options)
    return replace(article, doubt=doubt) if article.text else None


def _page_metadata(tree: Any, url: str, options: ExtractOptions) -> Document:
    """trafilatura's metadata of the page, without the searches nobody reads.

    The same steps as ``trafilatura.extract_metadata`` (meta tags, JSON-LD, title,
    author, date, site name), minus categories, tags and licence, which the service
    does not keep, and minus the author and date searches when the feed already gave
    them (``ExtractOptions.want_*``): together a third of an extraction's CPU.
    """
    try:
        meta = examine_meta(tree)
        if meta.author and " " not in meta.author:
            meta.author = None  # a one-word byline is a site handle (trafilatura's rule)
        try:
            meta = extract_meta_json(tree, meta)
        except Exception:  # trafilatura's JSON-LD reader raises on odd JSON; keep the tags
            log.debug("unreadable JSON-LD on %s", url)
        if not meta.title:
            meta.title = extract_title(tree)
        if options.want_author and not meta.author:
            meta.author = find_author(tree)
        if options.want_date:
            meta.date = find_date(tree, url=meta.url or url, **set_date_params(True))
        if not meta.sitename:
            meta.sitename = extract_sitename(tree)
        meta.clean_and_trim()
    except Exception:  # metadata is a bonus; a page that breaks it still has its text
        log.debug("metadata extraction failed on %s", url, exc_info=True)
        return Document()
    return meta


def _joined(base: str, link: str) -> str | None:
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class _PageFacts:
    paragraph_chars: int  # paragraph text on the whole page: what an article could be
    anchor_texts: frozenset[str]  # the page's link texts, to spot lists of links


def _run_trafilatura(
    tree: Any, url: str, options: ExtractOptions, *, favor: str, fast: bool = False
) -> tuple[Document, str, Any] | None:
    """One trafilatura pass: (document, plain text, body as an HTML tree), or None.
    ``fast``: without trafilatura's fallback extractors."""
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        favor_precision=favor == "precision",
        favor_recall=favor == "recall",
        fast=fast,
        with_metadata=False,  # _page_metadata, once per page
        target_language=options.language,
        **_TRAFILATURA_OPTIONS,
    )
    if not isinstance(document, Document) or document.body is None:
        return None
    body = _body_tree(document.body)
    text = html_to_text(_inner_html(body))
    return (document, text, body) if text else None


def _trim_trailing_links(body: Any, anchor_texts: frozenset[str]) -> None:
    """Drop blocks at the end of the body that are nothing but a link of the page.

    Related-story and tag links after the article survive favor_precision when
    they sit in the article's container; a paragraph of the article is never
    exactly one link's text.
    """
    for block in reversed(list(body)):
        items = list(block.iter("li")) or [block]
        texts = [" ".join(item.text_content().split()) for item in items]
        if any(text and text not in anchor_texts for text in texts):
            return
        block.drop_tree()


def _trim_leading_title(body: Any, title: str | None) -> None:
    """Drop the page's headline when the body starts with it: the feed item has it."""
    title = " ".join((title or "").split()).casefold()
    if not title:
        return
    for block in list(body)[:3]:
        text = " ".join(block.text_content().split()).casefold()
        if text and _is_headline(text, title):
            block.drop_tree()  # keeps its tail text, unlike remove()
            return


def _is_headline(text: str, title: str) -> bool:
    """The page's title, whole, cut short, or with the site's name or a section around it."""
    if text == title or (len(text) > 20 and title.startswith(text)):
        return True
    if len(text) > len(title) + 40:
        return False
    words, title_words = set(re.findall(r"\w+", text)), set(re.findall(r"\w+", title))
    shared = len(words & title_words)
    return len(title_words) >= 4 and shared >= 0.8 * max(len(words), len(title_words))


def _is_substantial(result: tuple[Document, str, Any] | None, page: _PageFacts) -> bool:
    """Whether a pass found enough text that trafilatura's fallbacks would not change it."""
    if result is None:
        return False
    chars = len(result[1])
    return chars >= _SUBSTANTIAL_CHARS and chars >= _SUBSTANTIAL_SHARE * page.paragraph_chars


def _doubt(result: tuple[Document, str, Any] | None, page: _PageFacts) -> str:
    """Why an extraction does not look like the article (a stub, links, a wall), or "".
    "too short for the page" (``looks_short``) still describes the article's own text."""
    if result is None:
        return "no main text found"
    text = result[1]
    if len(text) < _MIN_PLAUSIBLE_CHARS:
        return f"too short ({len(text)} chars)"
    if len(text) < _MIN_SHARE_OF_PAGE * page.paragraph_chars:
        return f"{_SHORT_FOR_THE_PAGE} ({len(text)} of {page.paragraph_chars} chars)"
    lines = text.splitlines()
    if sum(len(line) for line in lines if line in page.anchor_texts) > MAX_LINK_SHARE * len(text):
        return "mostly link text"
    if len(text) < 1000 and len(_WALL_WORDS.findall(text)) >= 2:
        return "a paywall or cookie wall"
    return ""


def looks_short(doubt: str) -> bool:
    """Whether a doubt only says the text is short for the page: it is real text (over
    ``_MIN_PLAUSIBLE_CHARS``), the article's or part of it, unlike a stub or a wall."""
    return doubt.startswith(_SHORT_FOR_THE_PAGE)


def _article(
    chosen: tuple[Document, str, Any],
    meta: Document,
    tree: Any,
    base: str,
    step: str,
    options: ExtractOptions,
) -> Article:
    _, _, body = chosen
    restore_markup(body, tree)
    _resolve_links(body, base)
    html = _inner_html(body)
    text = html_to_text(html)
    return Article(
        text=text,
        html=html,
        title=meta.title or None,
        author=meta.author or None,
        date=meta.date or None,
        image=_joined(base, meta.image) if meta.image else None,
        sitename=meta.sitename or None,
        description=meta.description or None,
        language=_language(tree, text, options),
        step=step,
    )


# --- per-feed selectors ----------------------------------------------------------------


def _drop_blocks(tree: Any, selectors: Sequence[str]) -> None:
    for selector in selectors:
        for element in CSSSelector(selector)(tree):
            if element.getparent() is not None:
                element.drop_tree()


def _kept_blocks(tree: Any, selectors: Sequence[str]) -> Any:
    """A new page holding only the blocks the feed's ``keep`` selectors name, in order."""
    if not selectors:
        return tree
    kept = [element for selector in selectors for element in CSSSelector(selector)(tree)]
    if not kept:
        return tree  # the site changed its layout: better the whole page than nothing
    page = lxml.html.fromstring("<html><body><article></article></body></html>")
    article = page.find(".//article")
    for element in sorted(set(kept), key=_document_order(tree)):
        copy = lxml.html.fromstring(lxml.html.tostring(element))
        copy.tail = None
        article.append(copy)
    return page


def _document_order(tree: Any) -> Any:
    positions = {element: index for index, element in enumerate(tree.iter())}
    return lambda element: positions.get(element, 0)


# --- measuring an extraction ------------------------------------------------------------


def _paragraph_chars(tree: Any) -> int:
    """Characters of paragraph text on the whole page: what an article could be."""
    return sum(len(" ".join(p.text_content().split())) for p in tree.iter("p"))


def _anchor_texts(tree: Any) -> frozenset[str]:
    return frozenset(" ".join(a.text_content().split()) for a in tree.iter("a"))


# --- language ----------------------------------------------------------------------------

_LANGUAGE = re.compile(r"^[a-z]{2,3}\b")


def _language(tree: Any, text: str, options: ExtractOptions) -> str | None:
    """The article's language: the feed's setting, else the page's, else detected."""
    if options.language:
        return options.language.lower()
    declared = tree.get("lang") or tree.get("xml:lang") or ""
    for meta in tree.iter("meta"):
        if (meta.get("http-equiv") or "").lower() == "content-language":
            declared = declared or meta.get("content") or ""
    match = _LANGUAGE.match(declared.strip().lower())
    if match:
        return match[0]
    return detect_language(text)


def detect_language(text: str) -> str | None:
    """The ISO 639-1 language of a text (py3langid), or None when it is too short."""
    if len(text) < 50:
        return None
    language, _ = py3langid.classify(text[:3000])
    return str(language)


# --- HTML and text -----------------------------------------------------------------------


def _body_tree(body: Any) -> Any:
    """trafilatura's body as an lxml.html <div> (its own tree is plain lxml.etree)."""
    tree = convert_to_html(body)
    inner = tree.find("body") if tree.tag == "html" else tree
    html = _inner_html(inner if inner is not None else tree)
    return lxml.html.fragment_fromstring(html, create_parent="div")


def _inner_html(body: Any) -> str:
    return "".join(
        lxml.etree.tostring(child, encoding="unicode", method="html") for child in body
    ).strip()


_BLOCKS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "blockquote")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, one paragraph per line."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return html.strip()
    for block in root.iter(*_BLOCKS):
        block.tail = "\n" + (block.tail or "")
    for cell in root.iter("td", "th"):
        cell.tail = " " + (cell.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


# --- the time limit -----------------------------------------------------------------------


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractTimeout after ``seconds`` of wall time (main thread only: SIGALRM)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise ExtractTimeout(f"extraction passed {seconds} s", url="")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- choosing the body ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChosenBody:
    """The body an article is stored and published with, and where it came from."""

    text: str
    html: str
    status: str
    note: str = ""
    step: str = STEP_NONE


def choose_body(
    article: Article | None, entry: Entry, *, min_chars: int, reason: str = ""
) -> ChosenBody:
    """Prefer the extracted page; fall back to the feed's text when it is missing, short,
    or the page's text is not the article (a wall, a list of links).

    A page's text that only looks short for the page (``looks_short``) is still the
    article's own text: it gives way only to a longer feed text, never to a teaser.
    Whenever the text kept is shorter than another one at hand, the note says why.
    """
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
        return looks_short(article.doubt) and len(article.text) >= len(feed_text)
    return len(article.text) >= min_chars or len(article.text) > len(feed_text)


def feed_body(entry: Entry, note: str) -> ChosenBody:
    """The feed's own text, for feeds configured with ``extract: false``."""
    return replace(choose_body(None, entry, min_chars=0, reason=note), note=note)


# --- the worker pool -------------------------------------------------------------------------


class ExtractionPool:
    """Runs ``extract_article`` on worker processes (one per core), or inline if workers=0.

    Workers are spawned, not forked: the daemon has threads (scheduler, server) and a
    forked child could inherit a held lock.
    """

    def __init__(self, workers: int) -> None:
        self._executor: Executor | None = None
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_lower_priority
            )

    def extract_many(
        self,
        pages: Iterable[tuple[bytes, str]],
        options: Iterable[ExtractOptions] | None = None,
    ) -> Iterator[Article | None]:
        """Extract each (page, url) pair, yielding results in input order."""
        pages = list(pages)
        per_page = list(options) if options is not None else [DEFAULT_OPTIONS] * len(pages)
        if self._executor is None:
            return (
                extract_article(page, url, options=opts)
                for (page, url), opts in zip(pages, per_page, strict=True)
            )
        bodies = [page for page, _ in pages]
        urls = [url for _, url in pages]
        return self._executor.map(_extract_in_worker, bodies, urls, per_page)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# How much lower than the daemon's main process a worker runs. On a 2-core machine the
# main process (storing, clustering, serving HTTP) is the pipeline's critical path; at
# equal priority the two busy workers take two thirds of the CPU from it.
WORKER_NICENESS = 5


def _lower_priority() -> None:
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: run at the same priority
        pass


def _extract_in_worker(page: bytes, url: str, options: ExtractOptions) -> Article | None:
    return extract_article(page, url, options=options)
