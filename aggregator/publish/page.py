"""The HTML page at ``/``: the newest stories, for people rather than feed readers.

Pure: :func:`render_page` turns a :class:`PageView` into bytes. The page is
server-rendered and self-contained (one inline stylesheet, no scripts, fonts or
images), readable on a phone, and every value in it is escaped: it shows titles,
outlets and links, never the articles' HTML. ``<link rel="alternate">`` tags name
every feed format, filtered like the page, so pasting the site's address into a feed
reader finds the feed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final
from urllib.parse import urlencode

from aggregator.models import PublishedStory, StoryFilter, StorySource
from aggregator.publish.feeds import CONTENT_TYPES, FEED_PATHS, outlet_count
from aggregator.urls import web_url

__all__ = ["PageView", "STYLE_CSP_SOURCE", "render_page"]

FORMAT_LABELS: Final = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}

STYLE: Final = """
:root { color-scheme: light dark; --muted: #5b6470; --line: #d8dde3; --accent: #1d5fa8; }
@media (prefers-color-scheme: dark) {
  :root { --muted: #9aa4ae; --line: #39414a; --accent: #7fb2ee; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 46rem; padding: 0 1rem 3rem;
  font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); }
header { padding: 1rem 0 .5rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
h1 a { color: inherit; text-decoration: none; }
form { display: flex; gap: .5rem; margin: .5rem 0; }
input[type=search] { flex: 1; min-width: 0; font: inherit; padding: .4rem .6rem; }
button { font: inherit; padding: .4rem .9rem; }
.filters { display: flex; flex-wrap: wrap; gap: .4rem; margin: .5rem 0 0; padding: 0;
  list-style: none; }
.filters a { display: inline-block; padding: .1rem .6rem; border: 1px solid var(--line);
  border-radius: 1rem; text-decoration: none; font-size: .9rem; }
.filters a[aria-current] { background: var(--accent); color: Canvas; border-color: var(--accent); }
ol.stories { list-style: none; margin: 0; padding: 0; }
.story { padding: .9rem 0; border-bottom: 1px solid var(--line); }
.story h2 { font-size: 1.1rem; margin: 0 0 .25rem; line-height: 1.35; }
.meta, .sources, .empty, footer { color: var(--muted); font-size: .9rem; }
.meta { margin: 0; }
details { margin-top: .25rem; }
summary { cursor: pointer; color: var(--muted); font-size: .9rem; }
.sources { margin: .25rem 0 0; padding-left: 1.2rem; }
.tags { font-size: .8rem; color: var(--muted); }
footer { padding-top: 1rem; }
""".strip()
# For the Content-Security-Policy header: allows exactly this stylesheet and no other.
STYLE_CSP_SOURCE: Final = (
    "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"
)


@dataclass(frozen=True)
class PageView:
    """Everything the page shows."""

    title: str
    stories: tuple[PublishedStory, ...]
    tags: tuple[str, ...]  # every tag there is, for the filter links
    story_filter: StoryFilter
    query_string: str  # the page's own slice, canonical (also used for its feeds)
    next_query: str | None  # the next (older) page, if any
    slices: tuple[tuple[str, str], ...] = ()  # named slices from feeds.yaml: (title, path)


def render_page(view: PageView) -> bytes:
    """The whole page as UTF-8 bytes."""
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(view.title)}</title>",
        *_alternate_links(view),
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        _header(view),
        "<main>",
        _story_list(view.stories),
        _older_link(view.next_query),
        "</main>",
        _footer(view),
        "</body>",
        "</html>",
    ]
    return ("\n".join(parts) + "\n").encode("utf-8")


def _text(value: str) -> str:
    return escape(value, quote=False)


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _href(path: str, query_string: str) -> str:
    return _attr(f"{path}?{query_string}" if query_string else path)


def _web_url(url: str) -> str | None:
    """``url`` when it is an http(s) URL; anything else is shown without a link."""
    return url if web_url(url) == url else None


def _alternate_links(view: PageView) -> list[str]:
    # The page's own slice comes first: a reader takes the first one it understands.
    links = [
        f'<link rel="alternate" type="{_attr(CONTENT_TYPES[fmt].split(";")[0])}"'
        f' title="{_attr(f"{view.title} ({label})")}"'
        f' href="{_href(FEED_PATHS[fmt], view.query_string)}">'
        for fmt, label in FORMAT_LABELS.items()
    ]
    links += [
        f'<link rel="alternate" type="{_attr(_slice_type(path))}"'
        f' title="{_attr(title)}" href="{_attr(path)}">'
        for title, path in view.slices
    ]
    return links


def _slice_type(path: str) -> str:
    fmt = {"atom": "atom", "json": "json"}.get(path.rsplit(".", 1)[-1], "rss")
    return CONTENT_TYPES[fmt].split(";")[0]


def _header(view: PageView) -> str:
    query = _attr(view.story_filter.query)
    return "\n".join(
        [
            "<header>",
            f'<h1><a href="/">{_text(view.title)}</a></h1>',
            '<form role="search" method="get" action="/">',
            *_hidden_filter_inputs(view.story_filter),
            f'<input type="search" name="q" value="{query}" maxlength="200"'
            ' placeholder="Search stories" aria-label="Search stories">',
            '<button type="submit">Search</button>',
            "</form>",
            _filter_links(view),
            "</header>",
        ]
    )


def _hidden_filter_inputs(story_filter: StoryFilter) -> list[str]:
    """Keep the chosen tags and outlets when the search box is used."""
    fields = [("tag", tag) for tag in story_filter.tags]
    fields += [("source", source) for source in story_filter.sources]
    if story_filter.min_sources > 1:
        fields.append(("min_sources", str(story_filter.min_sources)))
    return [f'<input type="hidden" name="{name}" value="{_attr(value)}">' for name, value in fields]


def _filter_links(view: PageView) -> str:
    current = view.story_filter
    links = [_filter_link("All", "", not current.tags and current.min_sources <= 1)]
    links += [
        _filter_link(tag, urlencode({"tag": tag}), current.tags == (tag,)) for tag in view.tags
    ]
    links.append(_filter_link("2+ outlets", "min_sources=2", current.min_sources == 2))
    items = "".join(f"<li>{link}</li>" for link in links)
    return f'<ul class="filters" aria-label="Filter stories">{items}</ul>'


def _filter_link(label: str, query_string: str, active: bool) -> str:
    marker = ' aria-current="page"' if active else ""
    return f'<a href="{_href("/", query_string)}"{marker}>{_text(label)}</a>'


def _story_list(stories: Sequence[PublishedStory]) -> str:
    if not stories:
        return '<p class="empty">No stories match.</p>'
    items = "\n".join(_story_item(story) for story in stories)
    return f'<ol class="stories">\n{items}\n</ol>'


def _story_item(story: PublishedStory) -> str:
    link = _web_url(story.link)
    title = _text(story.title)
    heading = f'<a href="{_attr(link)}">{title}</a>' if link else title
    lead = story.sources[0].feed_name if story.sources else ""
    meta = [f'<span class="lead">{_text(lead)}</span>'] if lead else []
    meta.append(_time(story.published))
    parts = [
        f'<li class="story" id="story-{_attr(story.id)}">',
        f"<h2>{heading}</h2>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        _sources_details(story),
    ]
    if story.tags:
        parts.append(f'<p class="tags">{_text(", ".join(story.tags))}</p>')
    parts.append("</li>")
    return "\n".join(parts)


def _time(moment: datetime) -> str:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f'<time datetime="{utc:%Y-%m-%dT%H:%M:%SZ}">{utc:%d %b %Y, %H:%M} UTC</time>'


def _sources_details(story: PublishedStory) -> str:
    """The number of outlets; opening it lists every article of the story."""
    if not story.sources:
        return ""
    count = outlet_count(story)
    label = f'<span class="count">{count} source{"s" if count != 1 else ""}</span>'
    items = "".join(f"<li>{_source_item(source)}</li>" for source in story.sources)
    return f'<details><summary>{label}</summary><ul class="sources">{items}</ul></details>'


def _source_item(source: StorySource) -> str:
    name = _text(source.feed_name)
    link = _web_url(source.url)
    if link:
        name = f'<a href="{_attr(link)}">{name}</a>'
    return f"{name}: {_text(source.title)}"


def _older_link(next_query: str | None) -> str:
    if next_query is None:
        return ""
    return f'<p><a rel="next" href="{_href("/", next_query)}">Older stories</a></p>'


def _footer(view: PageView) -> str:
    feeds = " · ".join(
        f'<a href="{_href(FEED_PATHS[fmt], view.query_string)}">{label}</a>'
        for fmt, label in FORMAT_LABELS.items()
    )
    return (
        f"<footer>Subscribe to these stories: {feeds}."
        ' Outlets followed: <a href="/sources.opml">OPML</a>.</footer>'
    )
