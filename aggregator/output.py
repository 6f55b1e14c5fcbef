"""The publish step's edges: read stories from storage, render them, write files.

``publisher`` and ``webpage`` render (pure); this module feeds them from the database
and writes the results where they go: a response body, stdout, or files replaced
atomically. It also turns a request's query string into a slice (:class:`FeedQuery`),
so the server, the page and the CLI agree on what ``?tag=naval&limit=5`` means.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from aggregator.config import Config, OutputSlice, Settings
from aggregator.errors import BadRequest
from aggregator.health import feed_states
from aggregator.models import FeedMeta, PageCursor, PublishedStory, StoryFilter
from aggregator.publisher import FEED_PATHS, FORMATS, render_feed
from aggregator.storage import Storage
from aggregator.storypage import render_story_page
from aggregator.webpage import PageView, render_page

MAX_LIMIT = 1000
# Bounds on what a stranger's query string may ask for.
MAX_FILTER_VALUES = 20
MAX_VALUE_CHARS = 200
# Last-Modified of a feed with no stories yet.
NO_STORIES_DATE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedQuery:
    """One slice of the merged feed: which stories, which page, where it is served."""

    limit: int
    default_limit: int = 0  # a limit equal to this is left out of links
    story_filter: StoryFilter = field(default_factory=StoryFilter)
    after: PageCursor | None = None
    path: str | None = None  # the path served at; default the format's own path
    title: str | None = None  # a named slice's title
    base_filter: StoryFilter = field(default_factory=StoryFilter)  # the path's own filter

    def query_string(self, *, after: PageCursor | None = None) -> str:
        """The canonical query string of this slice (``after`` overrides the page).

        Only what differs from the path's own slice is written, so a named slice and
        the default feed link to themselves without a query string.
        """
        cursor = after or self.after
        chosen, base = self.story_filter, self.base_filter
        pairs: list[tuple[str, str]] = []
        if chosen.tags != base.tags:
            pairs += [("tag", tag) for tag in chosen.tags]
        if chosen.sources != base.sources:
            pairs += [("source", source) for source in chosen.sources]
        if chosen.query != base.query:
            pairs.append(("q", chosen.query))
        if chosen.min_sources != base.min_sources:
            pairs.append(("min_sources", str(chosen.min_sources)))
        if self.limit != self.default_limit:
            pairs.append(("limit", str(self.limit)))
        if cursor is not None:
            pairs.append(("after", encode_cursor(cursor)))
        return urlencode(pairs)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    updated: datetime
    items: int


def parse_feed_query(
    params: Mapping[str, Sequence[str]],
    default_limit: int,
    base: OutputSlice | None = None,
) -> FeedQuery:
    """Read ``tag``, ``source``, ``q``, ``min_sources``, ``limit`` and ``after``.

    A named slice (``base``) supplies the defaults; a parameter given replaces that
    field. Malformed numbers fall back to the default rather than failing, so a
    reader's typo still gets a feed; only a damaged ``after`` cursor is an error.
    """
    start = _slice_query(base, default_limit) if base else FeedQuery(default_limit)
    start = replace(start, default_limit=start.limit, base_filter=start.story_filter)
    story_filter = _apply_filter_params(start.story_filter, params)
    limit = _bounded_int(_last(params, "limit"), start.limit, 1, MAX_LIMIT)
    after_text = _last(params, "after")
    after = decode_cursor(after_text) if after_text else None
    return replace(start, limit=limit, story_filter=story_filter, after=after)


def _slice_query(output: OutputSlice, default_limit: int) -> FeedQuery:
    story_filter = StoryFilter(
        tags=output.tags, sources=output.sources, query=output.q, min_sources=output.min_sources
    )
    limit = output.limit or default_limit
    return FeedQuery(limit, story_filter=story_filter, path=output.path, title=output.title or None)


def _apply_filter_params(base: StoryFilter, params: Mapping[str, Sequence[str]]) -> StoryFilter:
    query = _last(params, "q")
    minimum = _last(params, "min_sources")
    return StoryFilter(
        tags=_values(params, "tag") or base.tags,
        sources=_values(params, "source") or base.sources,
        query=base.query if query is None else query.strip()[:MAX_VALUE_CHARS],
        min_sources=_bounded_int(minimum, base.min_sources, 1, MAX_LIMIT),
    )


def _values(params: Mapping[str, Sequence[str]], key: str) -> tuple[str, ...]:
    """Every non-empty value of ``key``; a comma also separates values (tag=a,b)."""
    values = (
        part.strip()[:MAX_VALUE_CHARS] for value in params.get(key, ()) for part in value.split(",")
    )
    unique = dict.fromkeys(value for value in values if value)
    return tuple(unique)[:MAX_FILTER_VALUES]


def _last(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def _bounded_int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return max(low, min(value, high))


def encode_cursor(cursor: PageCursor) -> str:
    """An opaque, URL-safe token for "the stories after this one"."""
    raw = f"{cursor.published.astimezone(UTC).isoformat()}|{cursor.story_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> PageCursor:
    """Read a token made by :func:`encode_cursor`; raise BadRequest for anything else."""
    try:
        padded = token + "=" * (-len(token) % 4)
        published, story_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        moment = datetime.fromisoformat(published)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadRequest(f"invalid after= cursor: {token[:40]!r}") from exc
    if moment.tzinfo is None or not story_id or len(token) > 200:
        raise BadRequest(f"invalid after= cursor: {token[:40]!r}")
    return PageCursor(moment, story_id)


def read_page(
    storage: Storage, query: FeedQuery, *, by_activity: bool = False
) -> tuple[list[PublishedStory], PageCursor | None]:
    """One page of the slice and the cursor of the next page (None on the last);
    ``by_activity`` orders by each story's newest article (the HTML page)."""
    stories = storage.published_stories(
        query.limit + 1, query.story_filter, query.after, by_activity=by_activity
    )
    if len(stories) <= query.limit:
        return stories, None
    last = stories[query.limit - 1]
    moment = (last.last_activity or last.published) if by_activity else last.published
    return stories[: query.limit], PageCursor(moment, last.id)


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


# A temporary file this old is a leftover of a writer that was killed mid-write.
STALE_TEMPORARY_SECONDS = 600


def remove_stale_temporaries(paths: Sequence[Path], *, now: float | None = None) -> list[Path]:
    """Delete what writers of ``paths`` killed mid-write left behind (the temporary
    ``.NAME.*`` files of write_atomically), once they are old enough not to belong
    to a writer still at work; return what was deleted."""
    now = time.time() if now is None else now
    removed = []
    for path in paths:
        for leftover in path.parent.glob(f".{path.name}.*"):
            try:
                if now - leftover.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    leftover.unlink()
                    removed.append(leftover)
            except FileNotFoundError:  # another process cleaned it first
                continue
    return removed


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` so readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
