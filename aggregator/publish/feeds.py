"""Render the merged feed as RSS 2.0, Atom 1.0 or JSON Feed 1.1.

:func:`render_feed` is pure and deterministic: the same stories and meta always give
the same bytes (no clock, no random ids, stories kept in the order given, newest
first). XML is built with :mod:`xml.etree.ElementTree`, so every value is escaped by
the serialiser; characters XML 1.0 cannot carry at all are dropped first.

Every format carries the same HTML body per item: the lead article's sanitised
content, a line crediting the lead outlet (and the byline), then "Also reported by"
linking every other article of the story. Readers are told the lead *outlet* where
they show one: as the item's author, and in RSS ``<source url>`` and Atom ``<source>``.
An item's update date is the story's newest article's own date, not when we stored
it. Feeds that are one page of a longer list carry an RFC 5005 ``next`` link (JSON
Feed: ``next_url``).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from typing import Any, Final

from aggregator.models import FeedMeta, PublishedStory, StorySource
from aggregator.sanitize import escape_text_as_html
from aggregator.urls import web_url

__all__ = [
    "CONTENT_TYPES",
    "FEED_PATHS",
    "FORMATS",
    "byline",
    "display_title",
    "item_id",
    "last_activity",
    "lead_source",
    "outlet_count",
    "render_feed",
    "story_html",
]

FORMATS: Final = ("rss", "atom", "json")
CONTENT_TYPE_RSS: Final = "application/rss+xml"
CONTENT_TYPE_ATOM: Final = "application/atom+xml"
CONTENT_TYPES: Final[Mapping[str, str]] = {
    "rss": f"{CONTENT_TYPE_RSS}; charset=utf-8",
    "atom": f"{CONTENT_TYPE_ATOM}; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
FEED_PATHS: Final[Mapping[str, str]] = {
    "rss": "/feed.xml",
    "atom": "/feed.atom",
    "json": "/feed.json",
}

ATOM_NS: Final = "http://www.w3.org/2005/Atom"
CONTENT_NS: Final = "http://purl.org/rss/1.0/modules/content/"
DC_NS: Final = "http://purl.org/dc/elements/1.1/"
JSON_FEED_VERSION: Final = "https://jsonfeed.org/version/1.1"
# Used for Atom's mandatory feed-level <updated> when there is nothing to date it by.
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_XML_DECLARATION: Final = '<?xml version="1.0" encoding="utf-8"?>\n'
# Not allowed anywhere in an XML 1.0 document, escaped or not.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_feed(stories: Sequence[PublishedStory], meta: FeedMeta, fmt: str) -> bytes:
    """Return the merged feed in ``fmt`` (one of :data:`FORMATS`) as UTF-8 bytes."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown feed format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return renderer(stories, meta)


def item_id(story: PublishedStory) -> str:
    """The permanent, globally unique id a story is published under."""
    return f"urn:aggregator:story:{story.id}"


# --- shared helpers ---------------------------------------------------------------


def _rfc3339(dt: datetime) -> str:
    return _as_utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc822(dt: datetime) -> str:
    return format_datetime(_as_utc(dt).replace(microsecond=0), usegmt=True)


def _as_utc(dt: datetime) -> datetime:
    """UTC view of ``dt``; a naive value is taken to be UTC already, never local time."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _feed_updated(stories: Sequence[PublishedStory], meta: FeedMeta) -> datetime | None:
    candidates = [_as_utc(s.updated) for s in stories]
    if meta.updated is not None:
        candidates.append(_as_utc(meta.updated))
    return max(candidates, default=None)


def lead_source(story: PublishedStory) -> StorySource | None:
    """The article the story is published from (the sources list it first)."""
    sources = story.sources
    return next((source for source in sources if source.relation == "lead"), None) or (
        sources[0] if sources else None
    )


def _story_author(story: PublishedStory) -> str | None:
    """Who readers show as the item's author: the lead *outlet* (issue 17: a merged
    feed of 18 outlets listed bylines and raw addresses instead); the byline is
    credited in the body. A story without sources falls back to its byline."""
    lead = lead_source(story)
    return lead.feed_name if lead else byline(story.author)


_EMAIL = re.compile(r"\S+@\S+")


def byline(author: str | None) -> str | None:
    """A person's name from a feed's author field: RSS writes ``address (Name)``;
    an address alone is no name and is left out."""
    text = (author or "").strip()
    named = re.fullmatch(r"\S+@\S+\s*\((.+)\)", text)
    if named:
        text = named.group(1).strip()
    return None if not text or _EMAIL.fullmatch(text) else text


def last_activity(story: PublishedStory) -> datetime:
    """When the story last had news: its newest article's own date, never before it
    was first published. Readers see this as the item's update date (Atom
    ``updated``, JSON ``date_modified``), not the time we stored it."""
    published = _as_utc(story.published)
    if story.last_activity is None:
        return published
    return max(published, _as_utc(story.last_activity))


def _is_web_url(url: str) -> bool:
    """Only http(s) links are published (issue 19); storage already drops the others,
    this is the second line of defence."""
    return web_url(url) == url


def _page_url(meta: FeedMeta, path: str = "/") -> str:
    return meta.public_url.rstrip("/") + path


def _self_url(meta: FeedMeta, fmt: str) -> str:
    return _page_url(meta, meta.self_path or FEED_PATHS[fmt])


def _next_url(meta: FeedMeta) -> str | None:
    return None if meta.next_path is None else _page_url(meta, meta.next_path)


def outlet_count(story: PublishedStory) -> int:
    """How many outlets carried the story (an outlet with two copies counts once)."""
    return len({source.feed_name for source in story.sources})


def display_title(story: PublishedStory, meta: FeedMeta) -> str:
    """The item title, noting the number of outlets when settings ask for it."""
    count = outlet_count(story)
    if meta.title_source_count and count > 1:
        return f"{story.title} ({count} sources)"
    return story.title


def story_html(story: PublishedStory) -> str:
    """The item body: the lead's HTML (or its escaped text), the lead's credit, then
    "Also reported by" (independent reports) and "Republished by" (copies of the same
    article), every other article of the story linked."""
    body = story.content_html or escape_text_as_html(story.content_text or story.summary)
    return body + _credits_html(story)


def _credits_html(story: PublishedStory) -> str:
    sources = story.sources
    lead = lead_source(story)
    if lead is None:
        return ""
    by = byline(story.author)
    credit = f"<hr><p>Source: {_source_line(lead)}"
    credit += f", by {escape(by, quote=False)}</p>" if by else "</p>"
    others = [source for source in sources if source is not lead]
    # Independent reports of the event first, then copies of the lead's article.
    related = [source for source in others if source.relation != "duplicate"]
    copies = [source for source in others if source.relation == "duplicate"]
    also = _source_list("Also reported by", related)
    return credit + also + _source_list("Republished by", copies)


def _source_list(heading: str, sources: Sequence[StorySource]) -> str:
    if not sources:
        return ""
    items = "".join(f"<li>{_source_line(source)}</li>" for source in sources)
    return f"<h3>{heading}</h3><ul>{items}</ul>"


def _source_line(source: StorySource) -> str:
    name = escape(source.feed_name, quote=False)
    if _is_web_url(source.url):
        name = f'<a href="{escape(source.url)}">{name}</a>'
    line = f"{name}: {escape(source.title, quote=False)}"
    if source.published is not None:
        line += f" ({_as_utc(source.published):%Y-%m-%d})"
    return line


# --- XML helpers --------------------------------------------------------------------


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
    if text is not None:
        child.text = _xml_text(text)
    return child


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return (_XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


# --- RSS 2.0 ------------------------------------------------------------------------


def _render_rss(stories: Sequence[PublishedStory], meta: FeedMeta) -> bytes:
    # Prefixed names with their xmlns declarations written out, rather than
    # ET.register_namespace, which would change process-global state.
    root = ET.Element(
        "rss",
        {"version": "2.0", "xmlns:atom": ATOM_NS, "xmlns:content": CONTENT_NS, "xmlns:dc": DC_NS},
    )
    channel = _sub(root, "channel")
    _sub(channel, "title", meta.title)
    _sub(channel, "link", _page_url(meta))
    _sub(channel, "description", meta.description)
    updated = _feed_updated(stories, meta)
    if updated is not None:
        _sub(channel, "lastBuildDate", _rfc822(updated))
    _sub(channel, "atom:link", href=_self_url(meta, "rss"), rel="self", type=CONTENT_TYPE_RSS)
    next_url = _next_url(meta)
    if next_url is not None:
        _sub(channel, "atom:link", href=next_url, rel="next", type=CONTENT_TYPE_RSS)
    if meta.hub_url:
        _sub(channel, "atom:link", href=meta.hub_url, rel="hub")
    for story in stories:
        _rss_item(channel, story, meta)
    return _xml_bytes(root)


def _rss_item(channel: ET.Element, story: PublishedStory, meta: FeedMeta) -> None:
    item = _sub(channel, "item")
    body = story_html(story)
    _sub(item, "title", display_title(story, meta))
    if _is_web_url(story.link):
        _sub(item, "link", story.link)
    _sub(item, "guid", item_id(story), isPermaLink="false")
    _sub(item, "pubDate", _rfc822(story.published))
    _sub(item, "description", body)
    _sub(item, "content:encoded", body)
    for tag in story.tags:
        _sub(item, "category", tag)
    author = _story_author(story)
    if author:
        _sub(item, "dc:creator", author)
    lead = lead_source(story)
    if lead is not None and lead.feed_url and _is_web_url(lead.feed_url):
        # RSS 2.0 <source>: the channel the item came from, by its feed URL.
        _sub(item, "source", lead.feed_name, url=lead.feed_url)


# --- Atom 1.0 -----------------------------------------------------------------------


def _render_atom(stories: Sequence[PublishedStory], meta: FeedMeta) -> bytes:
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(root, "id", _page_url(meta))
    _sub(root, "title", meta.title)
    _sub(root, "subtitle", meta.description)
    _sub(root, "updated", _rfc3339(_feed_updated(stories, meta) or EPOCH))
    _sub(root, "link", rel="self", type=CONTENT_TYPE_ATOM, href=_self_url(meta, "atom"))
    _sub(root, "link", rel="alternate", type="text/html", href=_page_url(meta))
    next_url = _next_url(meta)
    if next_url is not None:
        _sub(root, "link", rel="next", type=CONTENT_TYPE_ATOM, href=next_url)
    if meta.hub_url:
        _sub(root, "link", rel="hub", href=meta.hub_url)
    _sub(_sub(root, "author"), "name", meta.title)
    for story in stories:
        _atom_entry(root, story, meta)
    return _xml_bytes(root)


def _atom_entry(root: ET.Element, story: PublishedStory, meta: FeedMeta) -> None:
    entry = _sub(root, "entry")
    _sub(entry, "id", item_id(story))
    _sub(entry, "title", display_title(story, meta))
    _sub(entry, "updated", _rfc3339(last_activity(story)))
    _sub(entry, "published", _rfc3339(story.published))
    author = _story_author(story)
    if author:
        _sub(_sub(entry, "author"), "name", author)
    _atom_source(entry, lead_source(story))
    if _is_web_url(story.link):
        _sub(entry, "link", rel="alternate", type="text/html", href=story.link)
    for source in story.sources:
        if _is_web_url(source.url):
            title = f"{source.feed_name}: {source.title}"
            _sub(entry, "link", rel="related", href=source.url, title=title)
    _sub(entry, "summary", story.summary, type="text")
    _sub(entry, "content", story_html(story), type="html")
    for tag in story.tags:
        _sub(entry, "category", term=tag)


def _atom_source(entry: ET.Element, lead: StorySource | None) -> None:
    """Atom <source> (RFC 4287 4.2.11): the feed the lead article came from."""
    if lead is None or not lead.feed_url or not _is_web_url(lead.feed_url):
        return
    source = _sub(entry, "source")
    _sub(source, "id", lead.feed_url)
    _sub(source, "title", lead.feed_name)
    _sub(source, "link", rel="self", href=lead.feed_url)
    if lead.site_url and _is_web_url(lead.site_url):
        _sub(source, "link", rel="alternate", type="text/html", href=lead.site_url)


# --- JSON Feed 1.1 ------------------------------------------------------------------


def _render_json(stories: Sequence[PublishedStory], meta: FeedMeta) -> bytes:
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": meta.title,
        "home_page_url": _page_url(meta),
        "feed_url": _self_url(meta, "json"),
        "description": meta.description,
        "authors": [{"name": meta.title}],
    }
    next_url = _next_url(meta)
    if next_url is not None:
        feed["next_url"] = next_url
    if meta.hub_url:
        feed["hubs"] = [{"type": "WebSub", "url": meta.hub_url}]
    feed["items"] = [_json_item(story, meta) for story in stories]
    text = json.dumps(feed, ensure_ascii=False, indent=2, sort_keys=False)
    return (text + "\n").encode("utf-8")


def _json_item(story: PublishedStory, meta: FeedMeta) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id(story),
        "url": story.link,
        "title": display_title(story, meta),
        "content_html": story_html(story),
        "content_text": story.content_text,
        "summary": story.summary,
        "date_published": _rfc3339(story.published),
        "date_modified": _rfc3339(last_activity(story)),
        "tags": list(story.tags),
    }
    if not _is_web_url(story.link):
        del item["url"]  # optional in JSON Feed: better none than javascript: or data:
    author = _story_author(story)
    if author:
        item["authors"] = [_json_author(author, lead_source(story))]
    if story.image and _is_web_url(story.image):
        item["image"] = story.image
    item["_aggregator"] = {"sources": [_json_source(source) for source in story.sources]}
    return item


def _json_author(name: str, lead: StorySource | None) -> dict[str, Any]:
    site = lead.site_url if lead is not None else None
    return {"name": name, "url": site} if site and _is_web_url(site) else {"name": name}


def _json_source(source: StorySource) -> dict[str, Any]:
    return {
        "url": source.url if _is_web_url(source.url) else None,  # javascript:, file: ...
        "title": source.title,
        "feed": source.feed_name,
        "date_published": None if source.published is None else _rfc3339(source.published),
        "relation": source.relation,
        "score": _finite_or_none(source.score),
    } | _without_none_extraction(source)


def _without_none_extraction(source: StorySource) -> dict[str, Any]:
    """How the source's text was obtained and its language, when known (issue 5)."""
    known = {"extraction": source.extraction_step, "language": source.language}
    return {key: value for key, value in known.items() if value is not None}


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity; publish those as null rather than invalid JSON."""
    return value if value is not None and math.isfinite(value) else None


_RENDERERS: Final[Mapping[str, Callable[[Sequence[PublishedStory], FeedMeta], bytes]]] = {
    "rss": _render_rss,
    "atom": _render_atom,
    "json": _render_json,
}
