"""Plain text of extracted HTML, and its language."""

from __future__ import annotations

from typing import Any

import lxml.etree
import lxml.html


def detect_language(text: str) -> str | None:
    """The ISO 639-1 language of a text (py3langid), or None when it is too short."""
    if len(text) < 50:
        return None
    import py3langid  # its model loads on first use: in the workers, rarely elsewhere

    language, _ = py3langid.classify(text[:3000])
    return str(language)


_BLOCKS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "blockquote")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, one paragraph per line."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return html.strip()
    return lines_of(root)


def lines_of(root: Any) -> str:
    """The text of ``root`` (changed in place), one paragraph or table row per line."""
    for block in root.iter(*_BLOCKS):
        block.tail = "\n" + (block.tail or "")
    for cell in root.iter("td", "th"):
        cell.tail = " " + (cell.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def text_of(element: Any) -> str:
    """``element.text_content()``, the same text (libxml2's content of the element) read
    without running an XPath query per call: half the time, on the hundreds of links
    and paragraphs of a page. An element without children (most links, many paragraphs)
    holds its text alone: it is read as it is, without serialising."""
    if not len(element):
        return element.text or ""
    text: str = lxml.etree.tostring(element, method="text", encoding=str, with_tail=False)
    return text
