"""The publish step's edges: read stories from storage, render them, write files.

``feeds`` and ``page`` render (pure); this module feeds them from the database (one
slice at a time, see ``query``) and writes the results where they go: a response
body, stdout, or files replaced atomically (``files``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Config, OutputSlice, Settings
from aggregator.models import FeedMeta
from aggregator.publish.feeds import FEED_PATHS, FORMATS, render_feed
from aggregator.publish.files import remove_stale_temporaries, write_atomically
from aggregator.publish.health import feed_states
from aggregator.publish.page import PageView, render_page
from aggregator.publish.query import FeedQuery, parse_feed_query, read_page
from aggregator.publish.story_page import render_story_page
from aggregator.storage import Storage

# Last-Modified of a feed with no stories yet.
NO_STORIES_DATE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    updated: datetime
    items: int


def render_from_storage(
    storage: Storage,
    settings: Settings,
    fmt: str,
    limit: int,
    query: FeedQuery | None = None,
) -> Rendered:
    """The merged feed in ``fmt``: the newest ``limit`` stories, or the slice ``query``."""
    query = query or FeedQuery(limit, default_limit=settings.feed_limit)
    stories, next_cursor = read_page(storage, query)
    updated = max((story.updated for story in stories), default=NO_STORIES_DATE)
    path = query.path or FEED_PATHS[fmt]
    meta = FeedMeta(
        title=query.title or settings.feed_title,
        public_url=settings.base_url,
        updated=updated,
        self_path=_with_query(path, query.query_string()),
        next_path=None
        if next_cursor is None
        else _with_query(path, query.query_string(after=next_cursor)),
        hub_url=settings.websub_hub or None,
        title_source_count=settings.title_source_count,
    )
    return Rendered(render_feed(stories, meta, fmt), updated, len(stories))


def _with_query(path: str, query_string: str) -> str:
    return f"{path}?{query_string}" if query_string else path


def render_page_from_storage(storage: Storage, config: Config, query: FeedQuery) -> Rendered:
    """The HTML page at ``/``: the stories of the slice with news most recently, with
    filters, and a word on the feeds when none of them is bringing stories."""
    stories, next_cursor = read_page(storage, query, by_activity=True)
    updated = max((story.updated for story in stories), default=NO_STORIES_DATE)
    view = PageView(
        title=config.settings.feed_title,
        stories=tuple(stories),
        tags=tuple(storage.published_tags()),
        story_filter=query.story_filter,
        query_string=replace(query, after=None).query_string(),
        next_query=None if next_cursor is None else query.query_string(after=next_cursor),
        slices=tuple((output.title or output.path, output.path) for output in config.outputs),
        feed_states=feed_states(storage.feed_health()),
    )
    return Rendered(render_page(view), updated, len(stories))


def render_story_from_storage(storage: Storage, config: Config, story_id: str) -> Rendered | None:
    """A live story's reading view (``/stories/ID.html``); None when it has none."""
    story = storage.published_story(story_id)
    if story is None:
        return None
    body = render_story_page(story, config.settings.feed_title)
    return Rendered(body, story.updated, 1)


def write_feed_files(
    storage: Storage, settings: Settings, directory: Path, outputs: Sequence[OutputSlice] = ()
) -> list[Path]:
    """Write feed.xml, feed.atom, feed.json and each named slice into ``directory``,
    each atomically."""
    written = []
    for fmt in FORMATS:
        target = directory / FEED_PATHS[fmt].lstrip("/")
        write_atomically(
            target, render_from_storage(storage, settings, fmt, settings.feed_limit).body
        )
        written.append(target)
    for output in outputs:
        target = directory / output.path.lstrip("/")
        query = parse_feed_query({}, settings.feed_limit, output)
        rendered = render_from_storage(storage, settings, output.format, query.limit, query)
        write_atomically(target, rendered.body)
        written.append(target)
    remove_stale_temporaries(written)
    return written
