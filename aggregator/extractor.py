"""Extract an article page's main text with trafilatura, and decide which body to keep.

``extract_article`` is pure CPU work over bytes (no IO), so it can run in worker
processes: trafilatura holds the GIL, threads would not use the second core.

The chain, each step recorded on the article (``Article.step``, then ``ChosenBody.step``):

1. ``precision``: trafilatura favouring precision, without its fallback extractors. On
   news pages it keeps the same article text as the default while leaving out more
   related-story boxes and teasers (measured in ``bench/extract_eval.py``).
2. ``balanced``: when step 1 found little next to the page's text (``_is_substantial``)
   or the page block holding its paragraphs has three times its text (``_left_behind``):
   trafilatura's default balance with its fallbacks (readability, jusText), the same
   extraction as plain ``trafilatura.extract``. Kept unless it is shorter. The
   fallbacks double a pass's cost, hence not on every page.
3. ``recall``: when the block holding the kept text's paragraphs still has much more
   text (or no pass found any): a pass favouring recall, kept only when it adds enough
   text that is not a gallery's repeated captions (``_prefer_recall``).
4. ``feed-content`` / ``feed-summary`` (``choose_body``): the feed's own text, which is
   the floor: an item is never published empty when the feed had text. A kept text
   that looks implausible (``_doubt``: mostly link text, a paywall or cookie wall, a
   stub) gives way to it; one that only looks short for the page, to a longer one.

Whenever the chain leaves out a longer candidate, the reason is recorded
(``Article.note``, then the article's extraction note).

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
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from copy import deepcopy
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
from aggregator.extract_markup import (
    MAX_LINK_SHARE,
    PageParagraphs,
    page_paragraphs,
    region_chars,
    restore_markup,
)
from aggregator.models import Article, Entry

log = logging.getLogger(__name__)

# Extraction status recorded on each article.
EXTRACTED = "extracted"  # trafilatura's text from the article page
FALLBACK = "fallback"  # the feed's own content or summary (page failed or too short)
REFUSED = "refused"  # the page URL was blocked by the private-address guard
FAILED = "failed"  # no page text and no feed text either

# The step of the chain that produced the text (stored as ``extraction_step``).
STEP_PRECISION = "precision"
STEP_BALANCED = "balanced"  # trafilatura's defaults, fallbacks included (plain extract())
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
_SUBSTANTIAL_SHARE = 0.2
# How much more text than a pass extracted the page block holding its paragraphs may
# have before another pass is tried: the balanced one after the precision pass, then
# the recall one (fitted on the tune half of wcxb-dev, bench/extract_eval.py; lists,
# tables and div-only paragraphs that a stricter pass drops are what it catches).
_BALANCED_REGION_RATIO = 3.0
_RECALL_REGION_RATIO = 1.5
_RECALL_GAIN = 1.2  # the recall pass's text replaces a plausible one only this much longer
_MAX_REPEATED_SHARE = 0.3  # ... and with less than this share of its extra text repeated


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
    _drop_invisible(tree)
    _drop_blocks(tree, options.drop)
    source = _kept_blocks(tree, options.keep)
    paragraphs = page_paragraphs(tree)
    facts = _PageFacts(
        paragraphs,
        paragraphs if source is tree else page_paragraphs(source),
        _anchor_texts(tree),
    )
    first_step = STEP_PRECISION if source is tree else STEP_SELECTORS
    choice = _run_chain(_Passes(source, url, options), facts, first_step)
    chosen = choice.chosen
    if chosen is None:
        return None
    _trim_trailing_links(chosen.body, facts.anchor_texts)
    _trim_leading_title(chosen.body, meta.title)
    article = _article(chosen, meta, tree, base, options, paragraphs)
    if not article.text:
        return None
    return replace(article, doubt=choice.doubt, note=choice.note)


@dataclass(frozen=True)
class _Pass:
    """One trafilatura pass's result: the chain step it stands for, its text and body."""

    step: str
    text: str  # plain text, never empty
    body: Any  # the body as an lxml.html <div>


@dataclass(frozen=True)
class _Choice:
    chosen: _Pass | None
    doubt: str = ""  # why the chosen text does not look like the article, or ""
    note: str = ""  # why a longer candidate was left out, or ""


@dataclass(frozen=True)
class _Passes:
    """Runs trafilatura on one page (the whole page or the blocks the selectors kept)."""

    source: Any
    url: str
    options: ExtractOptions

    def run(self, step: str, *, favor: str, fast: bool = False) -> _Pass | None:
        return _run_trafilatura(self.source, self.url, self.options, step, favor, fast)


def _run_chain(passes: _Passes, facts: _PageFacts, first_step: str) -> _Choice:
    """Steps 1 to 3 of the chain (see the module's docstring)."""
    first = passes.run(first_step, favor="precision", fast=True)
    chosen, left_behind = first, -1.0  # not measured yet
    if not _is_substantial(first, facts) or (
        (left_behind := _left_behind(first, facts)) >= _BALANCED_REGION_RATIO
    ):
        # trafilatura's fallbacks cost as much again as its own pass: they run only
        # when the pass without them found little, or left much of its block behind
        chosen = _longer(first, passes.run(STEP_BALANCED, favor="balanced"))
    if chosen is None:  # nothing anywhere so far: the recall pass is the last try
        chosen = passes.run(STEP_RECALL, favor="recall")
        return _Choice(chosen, _doubt(chosen, facts))
    if chosen is not first or left_behind < 0:
        left_behind = _left_behind(chosen, facts)
    choice = _Choice(chosen)
    if left_behind >= _RECALL_REGION_RATIO:
        choice = _prefer_recall(chosen, passes.run(STEP_RECALL, favor="recall"))
    return replace(choice, doubt=_doubt(choice.chosen, facts))


def _longer(first: _Pass | None, second: _Pass | None) -> _Pass | None:
    """The second pass, unless it found nothing or less than the first."""
    if second is None or (first is not None and len(second.text) < len(first.text)):
        return first
    return second


def _left_behind(result: _Pass | None, facts: _PageFacts) -> float:
    """How many times the pass's text the page block holding its paragraphs has (0 when
    none of them is found): far above 1, a stricter pass dropped lists, tables or
    paragraphs that are not <p> elements."""
    if result is None:
        return 0.0
    return region_chars(result.body, facts.source_paragraphs) / len(result.text)


def _prefer_recall(chosen: _Pass, recall: _Pass | None) -> _Choice:
    """The recall pass when it adds enough text that is not repeated lines, else the
    chosen pass, with the reason when the recall pass's text was longer."""
    if recall is None or len(recall.text) <= len(chosen.text):
        return _Choice(chosen)
    found = f"a recall pass found {len(recall.text)} chars against {len(chosen.text)}"
    if len(recall.text) < _RECALL_GAIN * len(chosen.text):
        return _Choice(chosen, note=f"{found}: too little more to prefer it")
    if _repeated_share(chosen.text, recall.text) >= _MAX_REPEATED_SHARE:
        return _Choice(chosen, note=f"{found}, mostly repeated lines (captions): not kept")
    return _Choice(recall)


def _repeated_share(kept: str, longer: str) -> float:
    """The share of what ``longer`` adds to ``kept`` that is lines it repeats: a photo
    gallery's captions and carousels, not an article's paragraphs."""
    kept_lines = set(kept.splitlines())
    lines = longer.splitlines()
    counts = Counter(lines)
    added = [line for line in lines if line not in kept_lines]
    repeated = sum(len(line) for line in added if counts[line] > 1)
    return repeated / max(1, sum(len(line) for line in added))


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
    paragraphs: PageParagraphs  # the page's <p> by text: what an article could be
    source_paragraphs: PageParagraphs  # the same for what the passes read (selectors)
    anchor_texts: frozenset[str]  # the page's link texts, to spot lists of links

    @property
    def paragraph_chars(self) -> int:
        return self.paragraphs.chars


def _run_trafilatura(
    tree: Any, url: str, options: ExtractOptions, step: str, favor: str, fast: bool
) -> _Pass | None:
    """One trafilatura pass, or None when it finds no text. ``fast``: without
    trafilatura's fallback extractors."""
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        favor_precision=favor == "precision",
        favor_recall=favor == "recall",
        fast=fast,
        with_metadata=False,  # _page_metadata, once per page
        # "xml": the body stays a tree, without the plain-text rendering we never read
        output_format="xml",
        target_language=options.language,
        **_TRAFILATURA_OPTIONS,
    )
    if not isinstance(document, Document) or document.body is None:
        return None
    body = _body_tree(document.body)
    text = _text_of(body)
    return _Pass(step, text, body) if text else None


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
    """Drop the page's headline when the body starts with it: the feed item has it.
    trafilatura's fallbacks return the page's own blocks, so the headline may sit
    inside a wrapper: blocks far longer than a headline are looked into, not counted."""
    title = " ".join((title or "").split()).casefold()
    if not title:
        return
    looked_at = 0
    for block in body.iter(*_HEADLINE_BLOCKS):
        if block is body:
            continue
        text = " ".join(block.text_content().split()).casefold()
        if not text or len(text) > len(title) + _HEADLINE_SLACK:
            continue  # empty, or a wrapper: the headline may be inside
        if _is_headline(text, title):
            block.drop_tree()  # keeps its tail text, unlike remove()
            return
        looked_at += 1
        if looked_at == 3:
            return


_HEADLINE_SLACK = 40  # a headline block may carry this much more than the title (a section)
_HEADLINE_BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "div", "header", "section")


def _is_headline(text: str, title: str) -> bool:
    """The page's title, whole, cut short, or with the site's name or a section around it."""
    if text == title or (len(text) > 20 and title.startswith(text)):
        return True
    if len(text) > len(title) + _HEADLINE_SLACK:
        return False
    words, title_words = set(re.findall(r"\w+", text)), set(re.findall(r"\w+", title))
    shared = len(words & title_words)
    return len(title_words) >= 4 and shared >= 0.8 * max(len(words), len(title_words))


def _is_substantial(result: _Pass | None, page: _PageFacts) -> bool:
    """Whether a pass found enough text that trafilatura's fallbacks would not change it."""
    if result is None:
        return False
    chars = len(result.text)
    return chars >= _SUBSTANTIAL_CHARS and chars >= _SUBSTANTIAL_SHARE * page.paragraph_chars


def _doubt(result: _Pass | None, page: _PageFacts) -> str:
    """Why an extraction does not look like the article (a stub, links, a wall), or "".
    "too short for the page" (``looks_short``) still describes the article's own text."""
    if result is None:
        return "no main text found"
    text = result.text
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
    chosen: _Pass,
    meta: Document,
    tree: Any,
    base: str,
    options: ExtractOptions,
    paragraphs: PageParagraphs,
) -> Article:
    body = chosen.body
    restore_markup(body, tree, paragraphs)
    _resolve_links(body, base)
    html = _inner_html(body)
    text = _text_of(body)
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
        step=chosen.step,
    )


# Scripts (but the JSON-LD that trafilatura's baseline reads), styles and vector
# drawings: trafilatura cuts them from its own copies of the page on every pass, and
# every pass copies the page first; cut once here, after the metadata has been read.
_INVISIBLE = lxml.etree.XPath("//script[not(@type='application/ld+json')] | //style | //svg")


def _drop_invisible(tree: Any) -> None:
    for element in _INVISIBLE(tree):
        if element.getparent() is not None:
            element.drop_tree()


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
    inner = tree if inner is None else inner
    inner.tag, inner.text = "div", None  # its leading text is not the article's
    inner.attrib.clear()
    html = lxml.etree.tostring(inner, encoding="unicode", method="html", with_tail=False)
    return lxml.html.fragment_fromstring(html)


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
    return _lines_of(root)


def _lines_of(root: Any) -> str:
    """The text of ``root`` (changed in place), one paragraph or table row per line."""
    for block in root.iter(*_BLOCKS):
        block.tail = "\n" + (block.tail or "")
    for cell in root.iter("td", "th"):
        cell.tail = " " + (cell.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def _text_of(body: Any) -> str:
    """``html_to_text(_inner_html(body))`` without writing and parsing the HTML again."""
    root = deepcopy(body)
    root.text = None  # not part of the inner HTML either
    return _lines_of(root)


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
