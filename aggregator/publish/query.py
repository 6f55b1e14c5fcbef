"""Slices of the merged feed: a request's query string turned into a :class:`FeedQuery`,
so the server, the page and the CLI agree on what ``?tag=naval&limit=5`` means; the
paging cursor; and reading one page of a slice from storage."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from aggregator.config import OutputSlice
from aggregator.errors import BadRequest
from aggregator.models import PageCursor, PublishedStory, StoryFilter
from aggregator.storage import Storage

MAX_LIMIT = 1000
# Bounds on what a stranger's query string may ask for.
MAX_FILTER_VALUES = 20
MAX_VALUE_CHARS = 200


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
