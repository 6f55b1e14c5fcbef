"""Extract an article page's main text with trafilatura, and decide which body to keep.

``extract_article`` is pure CPU work over bytes (no IO), so it can run in worker
processes: trafilatura holds the GIL, threads would not use the second core.
``choose_body`` applies the fallback rule: a missing or clearly too short extraction
gives way to the feed's own content or summary, and the article records that it did.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.settings import Document
from trafilatura.utils import load_html

from aggregator.models import Article, Entry

log = logging.getLogger(__name__)

# Extraction status recorded on each article.
EXTRACTED = "extracted"  # trafilatura's text from the article page
FALLBACK = "fallback"  # the feed's own content or summary (page failed or too short)
REFUSED = "refused"  # the page URL was blocked by the private-address guard
FAILED = "failed"  # no page text and no feed text either

_TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,  # comment threads are not the article
    "include_tables": True,  # order-of-battle and budget tables are content here
    "include_images": True,
    "include_links": True,
    "include_formatting": True,
    "with_metadata": True,
}


def extract_article(page: bytes | str, url: str) -> Article | None:
    """Run trafilatura on one page. ``None`` is a normal outcome: no main text found."""
    try:
        tree = load_html(page)
        if tree is None:
            return None
        # trafilatura resolves relative links against the site root, not the page:
        # resolve them ourselves, on the tree it will reuse (one parse, not two).
        tree.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
        document = trafilatura.bare_extraction(tree, url=url, **_TRAFILATURA_OPTIONS)
    except Exception:  # trafilatura has no error contract; a bad page must not kill a worker
        log.warning("trafilatura failed on %s", url, exc_info=True)
        return None
    if not isinstance(document, Document) or document.body is None:
        return None
    html = _body_html(document.body)
    # From the HTML, not trafilatura's text: that one keeps markdown link syntax.
    text = html_to_text(html)
    if not text:
        return None
    return Article(
        text=text,
        html=html,
        title=document.title or None,
        author=document.author or None,
        date=document.date or None,
        image=document.image or None,
        sitename=document.sitename or None,
        description=document.description or None,
    )


def _body_html(body: Any) -> str:
    tree = convert_to_html(body)
    inner = tree.find("body") if tree.tag == "html" else tree
    if inner is None:
        inner = tree
    return "".join(
        lxml.etree.tostring(child, encoding="unicode", method="html") for child in inner
    ).strip()


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, one paragraph per line."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return html.strip()
    for block in root.iter("p", "div", "li", "h1", "h2", "h3", "h4", "br", "tr"):
        block.tail = "\n" + (block.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class ChosenBody:
    """The body an article is stored and published with, and where it came from."""

    text: str
    html: str
    status: str
    note: str = ""


def choose_body(
    article: Article | None, entry: Entry, *, min_chars: int, reason: str = ""
) -> ChosenBody:
    """Prefer the extracted page; fall back to the feed's text when it is missing or short."""
    feed_html = entry.content_html or entry.summary_html
    feed_text = html_to_text(feed_html)
    if article is not None and (
        len(article.text) >= min_chars or len(article.text) > len(feed_text)
    ):
        return ChosenBody(article.text, article.html, EXTRACTED)
    if article is not None:
        reason = reason or f"extracted text too short ({len(article.text)} chars)"
    reason = reason or "no main text found on the page"
    if feed_text:
        return ChosenBody(feed_text, feed_html, FALLBACK, f"{reason}; used the feed's text")
    return ChosenBody("", "", FAILED, f"{reason}; the feed has no text either")


class ExtractionPool:
    """Runs ``extract_article`` on worker processes (one per core), or inline if workers=0.

    Workers are spawned, not forked: the daemon has threads (scheduler, server) and a
    forked child could inherit a held lock.
    """

    def __init__(self, workers: int) -> None:
        self._executor: Executor | None = None
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def extract_many(self, pages: Iterable[tuple[bytes, str]]) -> Iterator[Article | None]:
        """Extract each (page, url) pair, yielding results in input order."""
        pages = list(pages)
        if self._executor is None:
            return (extract_article(page, url) for page, url in pages)
        bodies = [page for page, _ in pages]
        urls = [url for _, url in pages]
        return self._executor.map(extract_article, bodies, urls)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
