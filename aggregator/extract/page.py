"""What the chain reads of a page besides its text: metadata (title, author, date, site
name), language, the feed's keep/drop selectors, the base its links resolve against,
and the blocks nobody reads (scripts, styles, SVG)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

import lxml.etree
import lxml.html
from htmldate import find_date
from lxml.cssselect import CSSSelector
from trafilatura.metadata import (
    examine_meta,
    extract_meta_json,
    extract_sitename,
    extract_title,
)
from trafilatura.settings import Document, set_date_params
from trafilatura.utils import decode_file, is_dubious_html, repair_faulty_html

from aggregator.extract.author import find_author
from aggregator.extract.options import ExtractOptions
from aggregator.extract.text import detect_language, text_of

log = logging.getLogger(__name__)


# trafilatura's parser settings, with one class for every element chosen in C: lxml.html's
# own lookup calls a Python function for each element it hands out (to give forms their
# classes, which nobody here uses), thousands of times a page: about 6 % of an extraction.
_PAGE_PARSER = lxml.html.HTMLParser(
    collect_ids=False,
    default_doctype=False,
    encoding="utf-8",
    remove_comments=True,
    remove_pis=True,
)
_PAGE_PARSER.set_element_class_lookup(
    lxml.etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
)


def load_page(page: bytes | str) -> Any:
    """The page as a tree, read as trafilatura's ``load_html`` reads it (decoded, repaired,
    parsed again from bytes when the text will not parse, None when it is not HTML),
    with ``_PAGE_PARSER``."""
    text = decode_file(page)
    beginning = text[:50].lower()
    text = repair_faulty_html(text, beginning)
    tree = _parsed(text)
    if tree is None or len(tree) < 1:  # say, a str with an encoding declaration
        tree = _parsed(text.encode("utf8", "surrogatepass"))
    if tree is not None and is_dubious_html(beginning) and len(tree) < 2:
        return None  # no <html> at the start and next to nothing parsed: not a page
    return tree


def _parsed(markup: str | bytes) -> Any:
    try:
        return lxml.html.fromstring(markup, parser=_PAGE_PARSER)
    except (ValueError, lxml.etree.LxmlError):
        return None


def base_url(tree: Any, url: str) -> str:
    """What the page's relative links are relative to: its ``<base href>``, else its URL."""
    for element in tree.iter("base"):
        href: str = element.get("href") or ""
        if href.strip():
            return joined(url, href) or url
    return url


_ABSOLUTE = ("http://", "https://")


def resolve_links(body: Any, base: str) -> None:
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


def page_metadata(tree: Any, url: str, options: ExtractOptions) -> Document:
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


def joined(base: str, link: str) -> str | None:
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return None


# Scripts (but the JSON-LD that trafilatura's baseline reads), styles and vector
# drawings: trafilatura cuts them from its own copies of the page on every pass, and
# every pass copies the page first; cut once here, after the metadata has been read.
_INVISIBLE = lxml.etree.XPath("//script[not(@type='application/ld+json')] | //style | //svg")


def drop_invisible(tree: Any) -> None:
    for element in _INVISIBLE(tree):
        if element.getparent() is not None:
            element.drop_tree()


def drop_blocks(tree: Any, selectors: Sequence[str]) -> None:
    for selector in selectors:
        for element in CSSSelector(selector)(tree):
            if element.getparent() is not None:
                element.drop_tree()


def kept_blocks(tree: Any, selectors: Sequence[str]) -> Any:
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


def anchor_texts(tree: Any) -> frozenset[str]:
    return frozenset(" ".join(text_of(a).split()) for a in tree.iter("a"))


_LANGUAGE = re.compile(r"^[a-z]{2,3}\b")


def page_language(tree: Any, text: str, options: ExtractOptions) -> str | None:
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
