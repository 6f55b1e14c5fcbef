"""Make foreign HTML and titles safe to republish.

Pure functions, no IO. ``nh3`` (the Rust ``ammonia`` sanitiser) is the security
boundary: everything :func:`sanitize_html` returns has been through ``nh3.clean``
with an explicit allow-list. The two small passes that run after it (``h1`` becomes
``h2``; tracking pixels and images without a source are dropped) work on nh3's own
normalised serialisation, where every ``<`` outside a tag is escaped and every
attribute value is double-quoted with ``"`` escaped, so a regular expression over a
start tag cannot be fooled by text or attribute content.
"""

from __future__ import annotations

import re
import unicodedata
from html import escape, unescape
from urllib.parse import urljoin, urlsplit

import nh3

__all__ = [
    "MAX_TITLE_CHARS",
    "cap_text",
    "clean_title",
    "escape_text_as_html",
    "repair_text",
    "sanitize_html",
]

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "u",
        "blockquote", "ul", "ol", "li", "a", "img", "figure", "figcaption", "table",
        "thead", "tbody", "tr", "th", "td", "pre", "code", "hr", "sup", "sub",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
}
URL_SCHEMES = frozenset({"http", "https"})
# Dropped together with everything inside them, not just unwrapped.
CLEAN_CONTENT_TAGS = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
LINK_REL = "noopener noreferrer"

_H1 = re.compile(r"<(/?)h1>")
# A start tag as nh3 serialises it: name, then attributes with double-quoted values.
_IMG = re.compile(r'<img((?:\s+[^\s="<>/]+(?:="[^"]*")?)*)\s*/?>')
_ATTR = re.compile(r'([^\s="<>/]+)(?:="([^"]*)")?')
_PIXEL_SIZES = frozenset({0, 1})
# Hosts that serve nothing but counting pixels in feed items, whatever size they claim.
TRACKER_HOSTS = frozenset(
    {
        "pixel.wp.com",
        "stats.wordpress.com",
        "feeds.feedburner.com",
        "feeds.feedblitz.com",
        "www.google-analytics.com",
        "pixel.quantserve.com",
        "sb.scorecardresearch.com",
        "pi.feedsportal.com",
    }
)
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_WHITESPACE = re.compile(r"\s+")
# Characters XML 1.0 forbids (C0 controls other than tab, LF, CR) plus DEL.
_INVALID_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Half of a UTF-16 pair with no other half (JSON's "\ud800"): not text, and UTF-8
# (nh3, SQLite, every output) cannot encode it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A whole tag, as left in a title whose markup was escaped once (&lt;img ...&gt;):
# one with attributes, a comment, or a known HTML element. "<F-35>" stays text.
_TAG = re.compile(
    r"<(?:!--|/?[a-zA-Z][^\s/<>]*\s[^<>]*=|/?(?:a|abbr|audio|b|base|big|blink|body|br|button"
    r"|code|div|em|embed|font|form|frame|h[1-6]|head|html|i|iframe|image|img|input|link"
    r"|marquee|math|meta|noscript|object|p|picture|q|s|script|select|small|source|span"
    r"|strong|style|sub|sup|svg|table|td|template|textarea|th|tr|u|video)\b[^<>]*>)",
    re.IGNORECASE,
)
# Longest title kept (issue 19): a feed reader shows a line or two, not a megabyte.
MAX_TITLE_CHARS = 300
# A cut keeps at least this share of the limit, else it is made mid-word.
_SHORTEST_CUT = 0.6


def sanitize_html(html: str, base_url: str) -> str:
    """Return ``html`` reduced to the allow-list, with absolute http(s) URLs only."""
    cleaned = nh3.clean(
        _INVALID_CONTROLS.sub("", repair_text(html)),
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(URL_SCHEMES),
        url_relative=lambda url: _absolute_url(url, base_url),
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return _drop_dead_images(_H1.sub(r"<\1h2>", cleaned))


def escape_text_as_html(text: str) -> str:
    """Turn plain text into ``<p>`` paragraphs; blank lines separate paragraphs.

    Single line breaks inside a paragraph are kept as ``<br>``.
    """
    paragraphs = (p.strip() for p in _BLANK_LINES.split(text.replace("\r\n", "\n")))
    return "".join(_paragraph(p) for p in paragraphs if p)


def repair_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (issue 19)."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def clean_title(title: str, limit: int = MAX_TITLE_CHARS) -> str:
    """Return ``title`` as one line of plain text: no markup, entities decoded once,
    at most ``limit`` characters (cut at a word, with an ellipsis).

    Markup that was escaped once (``&lt;img src=x onerror=...&gt;``) is stripped too:
    a title is text, and some readers show an RSS title as HTML."""
    text = _plain_text(repair_text(title))
    if _TAG.search(text):
        text = _plain_text(text)
    return cap_text(_WHITESPACE.sub(" ", _drop_controls(text)).strip(), limit)


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, ending in "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    word_end = cut.rstrip().rfind(" ")
    if word_end >= limit * _SHORTEST_CUT:
        cut = cut[:word_end]
    return cut.rstrip(" ,;:.-") + "…"


def _plain_text(html: str) -> str:
    return unescape(nh3.clean(html, tags=set(), attributes={}))


def _absolute_url(url: str, base_url: str) -> str | None:
    absolute = urljoin(base_url, url.strip())
    parts = urlsplit(absolute)
    return absolute if parts.scheme in URL_SCHEMES and parts.netloc else None


def _drop_dead_images(cleaned: str) -> str:
    return _IMG.sub(lambda m: "" if _is_dead_image(m.group(1)) else m.group(0), cleaned)


def _is_dead_image(attrs_text: str) -> bool:
    """True for a tracking pixel (width or height 0 or 1, or from a tracker's host) or
    an image without a source."""
    attrs = {name.lower(): unescape(value or "") for name, value in _ATTR.findall(attrs_text)}
    if not attrs.get("src"):
        return True
    if (urlsplit(attrs["src"]).hostname or "") in TRACKER_HOSTS:
        return True
    return any(_pixel_size(attrs.get(name)) for name in ("width", "height"))


def _pixel_size(value: str | None) -> bool:
    if value is None:
        return False
    digits = value.strip().lower().removesuffix("px").strip()
    return digits.isdigit() and int(digits) in _PIXEL_SIZES


def _paragraph(text: str) -> str:
    lines = (escape(line.strip(), quote=False) for line in text.split("\n"))
    return "<p>" + "<br>".join(line for line in lines if line) + "</p>"


def _drop_controls(text: str) -> str:
    """Turn whitespace controls into spaces and drop every other C0/C1 control."""
    return "".join(
        " " if ch.isspace() else "" if unicodedata.category(ch) == "Cc" else ch for ch in text
    )
