"""The extraction chain: an article page's main text with trafilatura.

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
4. ``feed-content`` / ``feed-summary`` (``body.choose_body``): the feed's own text, which is
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
import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.settings import Document

from aggregator.errors import ExtractTimeout
from aggregator.extract import xpath_subset
from aggregator.extract.markup import (
    MAX_LINK_SHARE,
    PageParagraphs,
    page_paragraphs,
    region_chars,
    restore_markup,
)
from aggregator.extract.options import DEFAULT_OPTIONS, ExtractOptions
from aggregator.extract.page import (
    anchor_texts,
    base_url,
    drop_blocks,
    drop_invisible,
    joined,
    kept_blocks,
    load_page,
    page_language,
    page_metadata,
    resolve_links,
)
from aggregator.extract.text import lines_of
from aggregator.models import SHORT_FOR_THE_PAGE, Article

log = logging.getLogger(__name__)

# trafilatura's pruning and content-finding expressions evaluated in Python, the same
# elements selected (xpath_subset's docstring): here because every extraction imports
# this module first. 3 ms a process.
xpath_subset.install()

# The step of the chain that produced the text (stored as ``extraction_step``).
STEP_PRECISION = "precision"
STEP_BALANCED = "balanced"  # trafilatura's defaults, fallbacks included (plain extract())
STEP_RECALL = "recall"
STEP_SELECTORS = "selectors"  # the feed's `keep` selectors chose the article's blocks

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


def _extract(page: bytes | str, url: str, options: ExtractOptions) -> Article | None:
    tree = load_page(page)
    if tree is None:
        return None
    base = base_url(tree, url)
    meta = page_metadata(tree, url, options)
    drop_invisible(tree)
    drop_blocks(tree, options.drop)
    source = kept_blocks(tree, options.keep)
    paragraphs = page_paragraphs(tree)
    facts = _PageFacts(
        paragraphs,
        paragraphs if source is tree else page_paragraphs(source),
        anchor_texts(tree),
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
        with_metadata=False,  # page_metadata, once per page
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
    "too short for the page" (``Article.looks_short``) still describes the article's own
    text."""
    if result is None:
        return "no main text found"
    text = result.text
    if len(text) < _MIN_PLAUSIBLE_CHARS:
        return f"too short ({len(text)} chars)"
    if len(text) < _MIN_SHARE_OF_PAGE * page.paragraph_chars:
        return f"{SHORT_FOR_THE_PAGE} ({len(text)} of {page.paragraph_chars} chars)"
    lines = text.splitlines()
    if sum(len(line) for line in lines if line in page.anchor_texts) > MAX_LINK_SHARE * len(text):
        return "mostly link text"
    if len(text) < 1000 and len(_WALL_WORDS.findall(text)) >= 2:
        return "a paywall or cookie wall"
    return ""


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
    resolve_links(body, base)
    html = _inner_html(body)
    text = _text_of(body)
    return Article(
        text=text,
        html=html,
        title=meta.title or None,
        author=meta.author or None,
        date=meta.date or None,
        image=joined(base, meta.image) if meta.image else None,
        sitename=meta.sitename or None,
        description=meta.description or None,
        language=page_language(tree, text, options),
        step=chosen.step,
    )


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


def _text_of(body: Any) -> str:
    """``html_to_text(_inner_html(body))`` without writing and parsing the HTML again."""
    root = deepcopy(body)
    root.text = None  # not part of the inner HTML either
    return lines_of(root)


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
