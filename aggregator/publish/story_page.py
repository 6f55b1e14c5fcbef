"""A story's reading view at ``/stories/ID.html`` (issue 17): the lead's text and every
source with its outlet, title, date and relation, linked from the page at ``/``.

Pure, like :mod:`aggregator.publish.page`, whose stylesheet and escaping it shares: the
body is the lead's plain text in paragraphs (escaped), never the articles' HTML, so
the page's strict Content-Security-Policy holds here too. ``/stories/ID`` stays the
story's JSON; a reader of either finds the other through ``<link rel="alternate">``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aggregator.models import PublishedStory, StorySource
from aggregator.publish.feeds import byline, last_activity, lead_source, outlet_count
from aggregator.publish.page import (
    RELATION_HEADINGS,
    as_utc,
    html_attr,
    html_document,
    html_text,
    time_element,
    web_url,
)

__all__ = ["render_missing_story", "render_story_page"]

# Each source's relation in words, for the list under each heading.
SOURCE_HEADINGS: Final = (("lead", "Source"), *RELATION_HEADINGS)


def render_story_page(story: PublishedStory, site_title: str) -> bytes:
    """The reading view of one story as UTF-8 bytes."""
    json_path = f"/stories/{story.id}"
    alternate = (
        f'<link rel="alternate" type="application/json" title="This story as JSON"'
        f' href="{html_attr(json_path)}">'
    )
    return html_document(
        f"{story.title} · {site_title}",
        [
            _back_link(site_title),
            "<main>",
            "<article>",
            _heading(story),
            f'<p class="meta">{" · ".join(_meta(story))}</p>',
            _body(story),
            "<h2>Sources</h2>",
            *_source_sections(story.sources),
            "</article>",
            "</main>",
            f'<footer>This story as <a href="{html_attr(json_path)}">JSON</a>.</footer>',
        ],
        head=[alternate],
    )


def render_missing_story(story_id: str, site_title: str) -> bytes:
    """The 404 page for an id no story has (nor had)."""
    return html_document(
        f"No such story · {site_title}",
        [
            _back_link(site_title),
            "<main>",
            f'<p class="empty">No story has the id {html_text(story_id[:100])}.</p>',
            "</main>",
        ],
    )


def _back_link(site_title: str) -> str:
    return f'<header><p><a href="/">← {html_text(site_title)}</a></p></header>'


def _heading(story: PublishedStory) -> str:
    title = html_text(story.title)
    link = web_url(story.link)
    return f'<h1><a href="{html_attr(link)}">{title}</a></h1>' if link else f"<h1>{title}</h1>"


def _meta(story: PublishedStory) -> list[str]:
    lead = lead_source(story)
    first = f"first reported {time_element(story.published)}"
    meta = [f"{html_text(lead.feed_name)}, {first}" if lead else first]
    by = byline(story.author)
    if by:
        meta.append(f"by {html_text(by)}")
    latest = last_activity(story)
    if latest > as_utc(story.published):
        meta.append(f"latest report {time_element(latest)}")
    count = outlet_count(story)
    meta.append(f"{count} outlet{'s' if count != 1 else ''}")
    if story.tags:
        meta.append(html_text(", ".join(story.tags)))
    return meta


def _body(story: PublishedStory) -> str:
    """The lead's text as paragraphs; its summary when there is no text."""
    paragraphs = [part.strip() for part in (story.content_text or story.summary).split("\n")]
    kept = "".join(f"<p>{html_text(part)}</p>" for part in paragraphs if part)
    return f'<div class="body">{kept}</div>' if kept else ""


def _source_sections(sources: Sequence[StorySource]) -> list[str]:
    """One list per relation: the lead, independent reports, then copies."""
    sections = []
    for relation, heading in SOURCE_HEADINGS:
        members = [source for source in sources if source.relation == relation]
        if members:
            items = "".join(f"<li>{_source_item(source)}</li>" for source in members)
            sections.append(f'<h3>{heading}</h3><ul class="sources {relation}">{items}</ul>')
    return sections


def _source_item(source: StorySource) -> str:
    name = html_text(source.feed_name)
    link = web_url(source.url)
    title = html_text(source.title)
    if link:
        title = f'<a href="{html_attr(link)}">{title}</a>'
    when = time_element(source.published) if source.published else "date unknown"
    return f"{name}: {title} ({when})"
