"""Put back, in an extracted body, what trafilatura's text pass leaves out: the page's
inline markup (links, emphasis), paragraphs of the same article that the page split
into sibling blocks (around ads or promos), and the article's own images.

trafilatura runs without links and images (see extractor._TRAFILATURA_OPTIONS); each
extracted paragraph is found again in the page by its text, and the page's element
lends it what the text pass dropped. Pure functions over lxml trees, no IO.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import lxml.etree
import lxml.html

MAX_LINK_SHARE = 0.5  # more link text than this is a list of links, not an article
_MIN_CHUNK_CHARS = 150  # a split-off block must carry this much paragraph text


def restore_markup(body: Any, page: Any) -> None:
    """Give ``body`` (an extracted article) the ``page``'s links, emphasis, split-off
    paragraphs and images, in place."""
    located = _locate_paragraphs(body, page)
    _restore_inline_markup(body, located)
    _append_split_blocks(body, located)
    _place_images(body, located)


# --- the article split into sibling blocks ---------------------------------------------


def _key(text: str) -> str:
    return " ".join(text.split())[:80]


def _locate_paragraphs(body: Any, tree: Any) -> dict[str, Any]:
    """The page's <p> elements whose text is an extracted paragraph, by paragraph key."""
    wanted = {_key(p.text_content()) for p in body.iter("p")}
    wanted.discard("")
    found: dict[str, Any] = {}
    for element in tree.iter("p"):
        key = _key(element.text_content())
        if key in wanted and key not in found:
            found[key] = element
    return found


_INLINE = frozenset({"a", "b", "strong", "i", "em", "code", "sub", "sup", "br", "span", "abbr"})


def _restore_inline_markup(body: Any, located: dict[str, Any]) -> None:
    """Give extracted paragraphs back the page's links and emphasis.

    The text pass runs without links (see _TRAFILATURA_OPTIONS); a paragraph whose
    text is exactly the page's gets the page's inline markup, so the text is
    unchanged and readers keep the links (already absolute). Anything else in the
    copy is removed here and by the sanitiser before publishing.
    """
    for paragraph in body.iter("p"):
        source = located.get(_key(paragraph.text_content()))
        if source is None or not _same_text(paragraph, source):
            continue
        if any(child.tag not in _INLINE for child in source.iter() if child is not source):
            continue
        markup = lxml.html.tostring(source, encoding="unicode", with_tail=False)
        copy = lxml.html.fragment_fromstring(markup)
        tail = paragraph.tail
        paragraph.clear()  # also clears the tail, which is not the paragraph's
        paragraph.text, paragraph.tail = copy.text, tail
        paragraph.extend(copy)


def _same_text(a: Any, b: Any) -> bool:
    return " ".join(a.text_content().split()) == " ".join(b.text_content().split())


def _append_split_blocks(body: Any, located: dict[str, Any]) -> None:
    """Add the article's paragraphs that sit in later blocks of the same kind.

    Pages break a long article into several sibling blocks (around ads or promos)
    sharing one class; extractors tend to keep only the first. Only later blocks
    of the same tag and class as the one holding most extracted paragraphs count,
    and only when they carry real paragraph text rather than links.
    """
    if len(located) < 2:
        return
    parents = Counter(p.getparent() for p in located.values() if p.getparent() is not None)
    container, _ = parents.most_common(1)[0]
    css_class = container.get("class")
    if not css_class:
        return
    seen = set(located)
    after = False
    for element in container.getroottree().iter(container.tag):
        if element is container:
            after = True
        elif after and element.get("class") == css_class and _is_outside(element, container):
            _append_block(body, element, seen)


def _is_outside(element: Any, container: Any) -> bool:
    return container not in element.iterancestors() and element not in container.iterancestors()


def _append_block(body: Any, block: Any, seen: set[str]) -> None:
    paragraphs = [" ".join(p.text_content().split()) for p in block.iter("p")]
    fresh = [text for text in paragraphs if text and _key(text) not in seen]
    total = sum(len(text) for text in fresh)
    links = sum(len(" ".join(a.text_content().split())) for a in block.iter("a"))
    if total < _MIN_CHUNK_CHARS or links > MAX_LINK_SHARE * total:
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
    pending: list[Any] = []
    placed: dict[str, list[Any]] = {}
    for element in region.iter():
        if element.tag == "img":
            pending.extend(_figure(element))
        elif id(element) in targets and pending:
            placed[targets[id(element)]] = pending[:_MAX_IMAGES]
            pending = []
    for paragraph in list(body.iter("p")):
        figures = placed.pop(_key(paragraph.text_content()), [])
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
