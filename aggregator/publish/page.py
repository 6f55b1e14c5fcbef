"""The HTML page at ``/``: the newest stories, for people rather than feed readers.

Pure: :func:`render_page` turns a :class:`PageView` into bytes. The page is
server-rendered and self-contained (one inline stylesheet, no scripts, fonts or
images), readable on a phone, and every value in it is escaped: it shows titles,
outlets and links, never the articles' HTML. ``<link rel="alternate">`` tags name
every feed format, filtered like the page, so pasting the site's address into a feed
reader finds the feed.

Each story shows its lead outlet, then the other outlets the way the feeds list them
("Also reported by" for their own reports, "Republished by" for copies), and links
("Read here", and its outlet count) to its reading view
(:mod:`aggregator.publish.story_page`). The other HTML pages (the reading view, feed
health) share this module's stylesheet and helpers, so one Content-Security-Policy
covers them all.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Final
from urllib.parse import urlencode

from aggregator import urls
from aggregator.models import PublishedStory, StoryFilter, StorySource
from aggregator.publish.feeds import CONTENT_TYPES, FEED_PATHS, last_activity, outlet_count

__all__ = [
    "FEED_HEALTH_PATH",
    "PageView",
    "STYLE_CSP_SOURCE",
    "html_document",
    "render_page",
    "story_page_path",
]

# The HTML pages beside the list (server routes): a story's reading view and feed health.
FEED_HEALTH_PATH: Final = "/feeds.html"
# Outlets named per relation on the list; the reading view lists them all.
MAX_OUTLETS_LISTED: Final = 6


def story_page_path(story_id: str) -> str:
    """The reading view of a story; ``/stories/ID`` stays its JSON."""
    return f"/stories/{story_id}.html"


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
.meta, .outlets, .sources, .empty, footer { color: var(--muted); font-size: .9rem; }
.meta, .outlets { margin: 0; }
.meta a.read { font-weight: 600; }
.notice { padding: .6rem .8rem; border: 1px solid var(--line); border-left: .3rem solid #c0392b; }
.sources { margin: .25rem 0 0; padding-left: 1.2rem; }
.tags { font-size: .8rem; color: var(--muted); }
article h1 { font-size: 1.4rem; line-height: 1.3; margin: 1rem 0 .5rem; }
article h2 { font-size: 1.1rem; margin: 1.5rem 0 .25rem; }
article h3 { font-size: 1rem; margin: .75rem 0 0; }
.body p { margin: .75rem 0; }
body.wide { max-width: 80rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
.scroll { overflow-x: auto; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.number { text-align: right; }
td time { white-space: nowrap; }
td.feed, td.note { overflow-wrap: anywhere; word-break: break-word; }
td.feed { min-width: 8rem; }
td.note { min-width: 14rem; }
@media (max-width: 40rem) {
  table.cards thead { display: none; }
  table.cards, table.cards tbody, table.cards tr { display: block; }
  table.cards tr { display: flex; flex-wrap: wrap; gap: 0 .8rem; padding: .5rem 0;
    border-bottom: 1px solid var(--line); }
  table.cards td { display: block; padding: 0; border: 0; min-width: 0; }
  table.cards td::before { content: attr(data-label) " "; color: var(--muted); }
  table.cards td.feed, table.cards td.note { flex-basis: 100%; }
  table.cards td.feed { font-weight: 600; }
  table.cards td.feed::before { content: none; }
}
.state-failing, .state-gone { color: #c0392b; font-weight: 600; }
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
    # Enabled feeds by health state (health.feed_states); says why no stories arrive.
    feed_states: Mapping[str, int] = field(default_factory=dict)


def render_page(view: PageView) -> bytes:
    """The whole page as UTF-8 bytes."""
    notice = _feed_notice(view.feed_states, listing=bool(view.stories))
    return html_document(
        view.title,
        [
            _header(view),
            "<main>",
            notice,
            _story_list(view, explained=bool(notice)),
            _older_link(view.next_query),
            "</main>",
            _footer(view),
        ],
        head=_alternate_links(view),
    )


def html_document(
    title: str, body: Sequence[str], *, head: Sequence[str] = (), wide: bool = False
) -> bytes:
    """A whole page as UTF-8 bytes: the shared head and stylesheet, then ``body``;
    ``wide`` for a page of tables, which needs more than a column of text."""
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html_text(title)}</title>",
        *head,
        f"<style>{STYLE}</style>",
        "</head>",
        '<body class="wide">' if wide else "<body>",
        *(part for part in body if part),
        "</body>",
        "</html>",
    ]
    return ("\n".join(parts) + "\n").encode("utf-8")


def html_text(value: str) -> str:
    """``value`` escaped as element text."""
    return escape(value, quote=False)


def html_attr(value: str) -> str:
    """``value`` escaped for a quoted attribute."""
    return escape(value, quote=True)


def _href(path: str, query_string: str) -> str:
    return html_attr(f"{path}?{query_string}" if query_string else path)


def web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL; anything else is shown without a link."""
    return url if url and urls.web_url(url) == url else None


def _alternate_links(view: PageView) -> list[str]:
    # The page's own slice comes first: a reader takes the first one it understands.
    links = [
        f'<link rel="alternate" type="{html_attr(CONTENT_TYPES[fmt].split(";")[0])}"'
        f' title="{html_attr(f"{view.title} ({label})")}"'
        f' href="{_href(FEED_PATHS[fmt], view.query_string)}">'
        for fmt, label in FORMAT_LABELS.items()
    ]
    links += [
        f'<link rel="alternate" type="{html_attr(_slice_type(path))}"'
        f' title="{html_attr(title)}" href="{html_attr(path)}">'
        for title, path in view.slices
    ]
    return links


def _slice_type(path: str) -> str:
    fmt = {"atom": "atom", "json": "json"}.get(path.rsplit(".", 1)[-1], "rss")
    return CONTENT_TYPES[fmt].split(";")[0]


def _header(view: PageView) -> str:
    query = html_attr(view.story_filter.query)
    return "\n".join(
        [
            "<header>",
            f'<h1><a href="/">{html_text(view.title)}</a></h1>',
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
    return [
        f'<input type="hidden" name="{name}" value="{html_attr(value)}">' for name, value in fields
    ]


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
    return f'<a href="{_href("/", query_string)}"{marker}>{html_text(label)}</a>'


def _feed_notice(states: Mapping[str, int], *, listing: bool) -> str:
    """Why no (new) stories arrive, when the feeds say so (issue 17: with every feed
    failing the page said only "No stories match."). Every feed failing is said above
    the stories too (they are getting old); the rest only in place of an empty list."""
    if not states:
        return ""
    troubled = states.get("failing", 0) + states.get("gone", 0)
    enabled = troubled + states.get("ok", 0) + states.get("pending", 0)
    health = f'<a href="{FEED_HEALTH_PATH}">feed health</a>'
    if troubled and troubled == enabled:
        message = (
            f"Every feed is failing ({troubled} of {enabled}): no new stories arrive"
            f" until they recover. See {health}."
        )
    elif listing:
        return ""
    elif enabled == 0:
        message = "No feeds are followed: add some to feeds.yaml."
    elif states.get("ok", 0) == 0 and troubled == 0:
        message = "The feeds have not been fetched yet: stories appear after the first refresh."
    else:
        return ""
    return f'<p class="notice" role="status">{message}</p>'


def _story_list(view: PageView, *, explained: bool) -> str:
    if not view.stories:
        if explained:  # the notice above already says why
            return ""
        filtered = view.story_filter != StoryFilter()
        return f'<p class="empty">{"No stories match." if filtered else "No stories yet."}</p>'
    items = "\n".join(_story_item(story) for story in view.stories)
    return f'<ol class="stories">\n{items}\n</ol>'


def _story_item(story: PublishedStory) -> str:
    link = web_url(story.link)
    title = html_text(story.title)
    heading = f'<a href="{html_attr(link)}">{title}</a>' if link else title
    parts = [
        f'<li class="story" id="story-{html_attr(story.id)}">',
        f"<h2>{heading}</h2>",
        f'<p class="meta">{" · ".join(_story_meta(story))}</p>',
        *outlet_lines(story, limit=MAX_OUTLETS_LISTED),
    ]
    if story.tags:
        parts.append(f'<p class="tags">{html_text(", ".join(story.tags))}</p>')
    parts.append("</li>")
    return "\n".join(parts)


def _story_meta(story: PublishedStory) -> list[str]:
    """Lead outlet, first report, latest report when later, and the reading view: by
    its outlet count and by a plain "Read here" on every story, one outlet or many
    (the title opens the lead article on its outlet's site, as a feed item's link)."""
    lead = story.sources[0].feed_name if story.sources else ""
    meta = [f'<span class="lead">{html_text(lead)}</span>'] if lead else []
    meta.append(time_element(story.published))
    latest = last_activity(story)
    if latest > as_utc(story.published):
        meta.append(f"latest {time_element(latest)}")
    count = outlet_count(story)
    label = f"{count} outlet{'s' if count != 1 else ''}"
    view = html_attr(story_page_path(story.id))
    meta.append(f'<a class="count" href="{view}">{label}</a>')
    meta.append(f'<a class="read" href="{view}">Read here</a>')
    return meta


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_element(moment: datetime) -> str:
    utc = as_utc(moment)
    return f'<time datetime="{utc:%Y-%m-%dT%H:%M:%SZ}">{utc:%d %b %Y, %H:%M} UTC</time>'


# The relations other than the lead, as the feeds name them (publisher.story_html).
RELATION_HEADINGS: Final = (("related", "Also reported by"), ("duplicate", "Republished by"))


def outlet_lines(story: PublishedStory, *, limit: int) -> list[str]:
    """ "Also reported by A, B" and "Republished by C": each outlet once, linked to its
    article; past ``limit`` names, "and N more" links to the reading view."""
    lines = []
    for relation, heading in RELATION_HEADINGS:
        firsts: dict[str, StorySource] = {}
        for source in story.sources[1:]:
            if source.relation == relation:
                firsts.setdefault(source.feed_name, source)
        if not firsts:
            continue
        names = [_outlet_link(source) for source in list(firsts.values())[:limit]]
        if len(firsts) > limit:
            more = f"and {len(firsts) - limit} more"
            names.append(f'<a href="{html_attr(story_page_path(story.id))}">{more}</a>')
        lines.append(f'<p class="outlets {relation}">{heading} {", ".join(names)}</p>')
    return lines


def _outlet_link(source: StorySource) -> str:
    name = html_text(source.feed_name)
    link = web_url(source.url)
    return f'<a href="{html_attr(link)}">{name}</a>' if link else name


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
        ' Outlets followed: <a href="/sources.opml">OPML</a>,'
        f' <a href="{FEED_HEALTH_PATH}">feed health</a>.</footer>'
    )
