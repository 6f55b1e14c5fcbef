"""Put back, in an extracted body, what trafilatura's text pass leaves out: the page's
inline markup (links, emphasis), paragraphs of the same article that the page split
into sibling blocks (around ads or promos), and the article's own images.

trafilatura runs without links and images (see extractor._TRAFILATURA_OPTIONS); each
extracted paragraph is found again in the page by its text (``PageParagraphs``, built
once per page), and the page's element lends it what the text pass dropped. The same
lookup tells the extractor how much text the page block holding the extracted
paragraphs has (``region_chars``): far more than was extracted means a pass left part
of the article behind. Pure functions over lxml trees, no IO.
"""

from __future__ import annotations

import re
from collections import Counter
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import lxml.etree
import lxml.html

from aggregator.extract.text import text_of

MAX_LINK_SHARE = 0.5  # more link text than this is a list of links, not an article
_MIN_CHUNK_CHARS = 150  # a split-off block must carry this much paragraph text


@dataclass(frozen=True)
class PageParagraphs:
    """A page's <p> elements by paragraph key (the first of each, with its whole text),
    and the size of their text."""

    by_key: dict[str, tuple[Any, str]]
    chars: int  # paragraph text on the whole page: what an article could be


def page_paragraphs(page: Any) -> PageParagraphs:
    by_key: dict[str, tuple[Any, str]] = {}
    chars = 0
    for element in page.iter("p"):
        text = " ".join(text_of(element).split())
        chars += len(text)
        by_key.setdefault(text[:_KEY_CHARS], (element, text))
    by_key.pop("", None)
    return PageParagraphs(by_key, chars)


def restore_markup(body: Any, page: Any, paragraphs: PageParagraphs | None = None) -> None:
    """Give ``body`` (an extracted article) the ``page``'s links, emphasis, split-off
    paragraphs and images, in place."""
    paragraphs = paragraphs or page_paragraphs(page)
    located = _locate_paragraphs(body, paragraphs)
    _restore_inline_markup(body, paragraphs)
    _append_split_blocks(body, located)
    _place_images(body, located)


def region_chars(body: Any, paragraphs: PageParagraphs) -> int:
    """Characters of text in the smallest page block holding all of ``body``'s paragraphs
    (0 when none is found in the page): what the article's own block has to offer."""
    located = _locate_paragraphs(body, paragraphs)
    if not located:
        return 0
    region = _common_ancestor(list(located.values()))
    if region is None:
        return 0
    hidden = sum(int(_TEXT_CHARS(element)) for element in region.iter(*_HIDDEN_TEXT))
    return int(_TEXT_CHARS(region)) - hidden


# What a reader does not see in a block: scripts, styles and no-script fallbacks.
_HIDDEN_TEXT = ("script", "style", "noscript")
_TEXT_CHARS = lxml.etree.XPath("string-length(normalize-space(.))")


# --- the article split into sibling blocks ---------------------------------------------

_KEY_CHARS = 80


def _key(text: str) -> str:
    return " ".join(text.split())[:_KEY_CHARS]


def _locate_paragraphs(body: Any, paragraphs: PageParagraphs) -> dict[str, Any]:
    """The page's <p> elements whose text is an extracted paragraph, by paragraph key."""
    located: dict[str, Any] = {}
    for paragraph in body.iter("p"):
        key = _key(text_of(paragraph))
        found = paragraphs.by_key.get(key)
        if found is not None:
            located[key] = found[0]
    return located


_INLINE = frozenset({"a", "b", "strong", "i", "em", "code", "sub", "sup", "br", "span", "abbr"})


def _restore_inline_markup(body: Any, paragraphs: PageParagraphs) -> None:
    """Give extracted paragraphs back the page's links and emphasis.

    The text pass runs without links (see _TRAFILATURA_OPTIONS); a paragraph whose
    text is exactly the page's gets the page's inline markup, so the text is
    unchanged and readers keep the links (already absolute). Anything else in the
    copy is removed here and by the sanitiser before publishing.
    """
    for paragraph in body.iter("p"):
        text = " ".join(text_of(paragraph).split())
        source, source_text = paragraphs.by_key.get(text[:_KEY_CHARS], (None, ""))
        if source is None or source_text != text:
            continue
        if any(child.tag not in _INLINE for child in source.iter() if child is not source):
            continue
        copy = deepcopy(source)  # a copy also copies its tail: dropped below
        tail = paragraph.tail
        paragraph.clear()  # also clears the tail, which is not the paragraph's
        paragraph.text, paragraph.tail = copy.text, tail
        paragraph.extend(copy)


def _append_split_blocks(body: Any, located: dict[str, Any]) -> None:
    """Add the article's paragraphs that sit in later blocks of the same kind.

    Pages break a long article into several sibling blocks (around ads or promos)
    sharing one class; extractors tend to keep only the first. Only later blocks
    of the same tag and class as the one holding most extracted paragraphs count,
    and only when they carry real paragraph text rather than links. Page builders
    give the same class to every widget, so a block in another kind of wrapper
    (``_wrapper``), in the page's chrome (``_in_chrome``) or a short notice
    (``_is_notice``) is not the article's.
    """
    if len(located) < 2:
        return
    parents = Counter(p.getparent() for p in located.values() if p.getparent() is not None)
    container, _ = parents.most_common(1)[0]
    css_class = container.get("class")
    if not css_class:
        return
    seen = set(located)
    # what is known of each element between a block and the container's ancestors:
    # whether it or one of those above it is chrome (the container's are not)
    chrome: dict[Any, bool] = dict.fromkeys(container.iterancestors(), False)
    wrapper = _wrapper(container)
    for element in _LATER_OF_A_KIND(container, tag=container.tag, css=css_class):
        other = _wrapper(element)
        if wrapper and other and other != wrapper:
            continue  # a widget of another type: an author box, a list of posts
        if not _in_chrome(element, chrome):
            _append_block(body, element, seen)


# The elements after one in the page (outside it), with its tag and class.
_LATER_OF_A_KIND = lxml.etree.XPath("following::*[name() = $tag and @class = $css]")


_NUMBERED = re.compile(r"\d")


def _wrapper(block: Any) -> tuple[str, frozenset[str]] | None:
    """What kind of element wraps ``block``: its tag and classes, less the numbered
    ones a page builder gives each instance; None when it has no other class."""
    parent = block.getparent()
    if parent is None:
        return None
    names = frozenset(n for n in (parent.get("class") or "").split() if not _NUMBERED.search(n))
    return (parent.tag, names) if names else None


# Where a page keeps what is not the article: footers, side columns, comment threads,
# author boxes, related stories, sign-up and sharing widgets.
_CHROME_TAGS = frozenset({"footer", "aside", "nav", "form", "header"})
_CHROME_NAMES = re.compile(  # on lower-cased names
    r"comment|footer|sidebar|related|author|\bbio|share|newsletter|subscri|cookie|consent|"
    r"promo|recommend|disqus|respond|reply|sign-?up|popular|trending|read-?more|more-?stories"
)


def _in_chrome(block: Any, known: dict[Any, bool]) -> bool:
    """Whether ``block`` sits in the page's chrome: whether it or an element above it
    (up to one already in ``known``, which this fills in) is a chrome element."""
    path: list[Any] = []
    verdict = False
    for element in (block, *block.iterancestors()):
        if element in known:
            verdict = known[element]
            break
        path.append(element)
    for element in reversed(path):  # from the top down: a chrome parent makes it chrome
        names = f"{element.get('class', '')} {element.get('id', '')}".lower()
        verdict = verdict or element.tag in _CHROME_TAGS or bool(_CHROME_NAMES.search(names))
        known[element] = verdict
    return verdict


# A short block naming these is a site notice (cookies, ad blockers, sign-up, copyright).
_NOTICE_WORDS = re.compile(
    r"\b(subscribe|subscription|sign in|log in|cookies?|consent|enable javascript|"
    r"ad ?blocker|already a subscriber|create an account|register|newsletter|copyright|"
    r"all rights reserved)\b|©",
    re.IGNORECASE,
)
_MAX_NOTICE_CHARS = 600


def _is_notice(text: str) -> bool:
    return len(text) < _MAX_NOTICE_CHARS and _NOTICE_WORDS.search(text) is not None


def _append_block(body: Any, block: Any, seen: set[str]) -> None:
    paragraphs = [" ".join(text_of(p).split()) for p in block.iter("p")]
    fresh = [text for text in paragraphs if text and _key(text) not in seen]
    total = sum(len(text) for text in fresh)
    if total < _MIN_CHUNK_CHARS:
        return
    links = sum(len(" ".join(text_of(a).split())) for a in block.iter("a"))
    if links > MAX_LINK_SHARE * total or _is_notice(" ".join(text_of(block).split())):
        return
    for text in fresh:
        seen.add(_key(text))
        paragraph = lxml.etree.SubElement(body, "p")
        paragraph.text = text


# --- images ------------------------------------------------------------------------------

# Lazy-loading pages keep the real picture in a data- attribute and a placeholder in src.
_IMAGE_SOURCES = ("data-src", "data-lazy-src", "data-original", "src")
_PLACEHOLDER = re.compile(r"placeholder|blank\.|spacer|pixel\.|lazy[_-]?load", re.IGNORECASE)
# Site chrome that sits inside the article's block on some pages.
_CHROME_IMAGE = re.compile(r"logo|icon|avatar|sprite|button|badge", re.IGNORECASE)
_MAX_IMAGES = 20
_MIN_IMAGE_SIDE = 100  # pixels, when the page says: smaller ones are icons and pixels


def _place_images(body: Any, located: dict[str, Any]) -> None:
    """Put the article's own images back, before the paragraph each one precedes.

    An image counts when it sits, in the page, inside the smallest block holding all
    extracted paragraphs and before the last of them; pictures after the text are
    related-story teasers.
    """
    if not located:
        return
    region = _common_ancestor(list(located.values()))
    if region is None:
        return
    targets = {id(p): key for key, p in located.items()}
    pending: list[Any] = []  # the page's <img> since the last extracted paragraph
    placed: dict[str, list[Any]] = {}
    for element in region.iter("img", "p"):
        if element.tag == "img":
            pending.append(element)
        elif id(element) in targets and pending:
            figures = [figure for img in pending for figure in _figure(img)]
            placed[targets[id(element)]] = figures[:_MAX_IMAGES]
            pending = []
    for paragraph in list(body.iter("p")):
        figures = placed.pop(_key(text_of(paragraph)), [])
        for figure in figures:
            paragraph.addprevious(figure)


def _common_ancestor(elements: list[Any]) -> Any:
    common = [elements[0], *elements[0].iterancestors()]
    for element in elements[1:]:
        ancestors = {element, *element.iterancestors()}
        common = [candidate for candidate in common if candidate in ancestors]
    return common[0] if common else None


def _figure(img: Any) -> list[Any]:
    """A <figure> for the page's image (its URL still as the page wrote it), or none."""
    sources = (img.get(name) or "" for name in _IMAGE_SOURCES)
    src = next((src for src in sources if src and not _PLACEHOLDER.search(src)), "").strip()
    if not src or _scheme(src) not in ("", "http", "https") or _CHROME_IMAGE.search(src):
        return []  # data:, javascript: and the like; relative ones are resolved later
    if _is_small(img) or _in_ad(img):
        return []
    figure = lxml.etree.Element("figure")
    lxml.etree.SubElement(figure, "img", src=src, alt=img.get("alt") or "")
    return [figure]


def _scheme(url: str) -> str:
    """The URL's scheme in lower case, "" for a relative URL."""
    head = url.split("/", 1)[0]
    return head.split(":", 1)[0].lower() if ":" in head else ""


_AD_BLOCK = re.compile(r"(^|[\s_-])(ad|ads|advert\w*|sponsor\w*|promo\w*)($|[\s_-])", re.I)


def _in_ad(img: Any) -> bool:
    """Whether the image sits in an advertising or promotion block."""
    for element in img.iterancestors():
        if _AD_BLOCK.search(f"{element.get('class', '')} {element.get('id', '')}"):
            return True
    return False


def _is_small(img: Any) -> bool:
    for side in ("width", "height"):
        value = (img.get(side) or "").removesuffix("px")
        if value.isdigit() and int(value) < _MIN_IMAGE_SIDE:
            return True
    return False
