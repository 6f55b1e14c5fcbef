"""The render cache: feeds and pages rendered once per change of the database, then
served from memory with their gzip, ETag and Last-Modified.

Change is detected cheaply with ``PRAGMA data_version`` (it moves only when another
connection commits), then confirmed with the stories' version. Renders run off the
event loop on the render pool's threads; requests for a slice already being rendered
wait for that render, and at most MAX_RENDERS_IN_FLIGHT distinct renders wait or run.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TypeVar

from aggregator.config import Config
from aggregator.publish.feeds import CONTENT_TYPES, FEED_PATHS
from aggregator.publish.output import (
    render_from_storage,
    render_page_from_storage,
    render_story_from_storage,
)
from aggregator.publish.query import FeedQuery
from aggregator.serve.render_pool import RenderPool
from aggregator.storage import Storage

PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
MAX_CACHED = 256  # rendered bodies kept per content version (distinct slices)
# Query strings come from strangers: bound the memory their slices can take too.
MAX_CACHED_BYTES = 64 * 1024 * 1024
GZIP_LEVEL = 6
# Distinct renders waiting for or on a render thread; more is a 503 (issue 19).
MAX_RENDERS_IN_FLIGHT = 32
RETRY_AFTER_SECONDS = 2


class Overloaded(Exception):
    """Too many distinct renders in flight: answer 503 and let the client retry."""


@dataclass(frozen=True)
class CachedBody:
    """One rendered response body, with what conditional and gzip requests need."""

    body: bytes
    gzipped: bytes
    etag: str  # quoted, strong; the gzip variant appends -gzip inside the quotes
    last_modified: datetime
    content_type: str
    last_modified_header: str = ""
    gzip_etag: str = ""

    @classmethod
    def of(cls, body: bytes, last_modified: datetime, content_type: str) -> CachedBody:
        digest = hashlib.sha256(body).hexdigest()[:32]
        gzipped = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        # HTTP dates have whole seconds; compare If-Modified-Since at that precision.
        moment = last_modified.astimezone(UTC).replace(microsecond=0)
        return cls(
            body,
            gzipped,
            f'"{digest}"',
            moment,
            content_type,
            last_modified_header=format_datetime(moment, usegmt=True),
            gzip_etag=f'"{digest}-gzip"',
        )


Render = Callable[[Storage], CachedBody]
T = TypeVar("T")


class FeedCache:
    """Rendered feeds and pages keyed by slice, valid for one content version.

    Bodies are rendered (and gzipped) once per change of the database, on the render
    pool's threads, then served from memory. At most MAX_CACHED slices and
    MAX_CACHED_BYTES are kept, the least recently used dropped first. ``storage`` is
    the event loop's own connection: it only tells whether the content changed.
    """

    def __init__(self, storage: Storage, config: Config, pool: RenderPool) -> None:
        self.storage = storage
        self.config = config
        self.pool = pool
        self._data_version: int | None = None
        self._content_version = ""
        self._generation = 0  # moves when the content does: older renders are not kept
        self._bodies: OrderedDict[tuple[str, ...], CachedBody] = OrderedDict()
        self._bytes = 0
        self._in_flight: dict[tuple[int, tuple[str, ...]], asyncio.Future[CachedBody]] = {}
        self._uncached = 0

    async def get(self, key: tuple[str, ...], render: Render) -> CachedBody:
        """The cached body, else one render shared by every request for ``key``.
        Raises Overloaded when MAX_RENDERS_IN_FLIGHT other renders are under way."""
        self._invalidate_if_changed()
        cached = self._bodies.get(key)
        if cached is not None:
            self._bodies.move_to_end(key)
            return cached
        flight = (self._generation, key)
        future = self._in_flight.get(flight)
        if future is None:
            self._check_room()
            future = self._in_flight[flight] = asyncio.ensure_future(self._render(flight, render))
        # A client hanging up must not cancel the render the others are waiting for.
        return await asyncio.shield(future)

    async def run(self, work: Callable[[Storage], T]) -> T:
        """Work that is not cached (a page of relative times), under the same bound."""
        self._check_room()
        self._uncached += 1
        try:
            return await self.pool.run(work)
        finally:
            self._uncached -= 1

    def _check_room(self) -> None:
        if len(self._in_flight) + self._uncached >= MAX_RENDERS_IN_FLIGHT:
            raise Overloaded

    async def _render(self, flight: tuple[int, tuple[str, ...]], render: Render) -> CachedBody:
        try:
            cached = await self.pool.run(render)
        finally:
            del self._in_flight[flight]
        if flight[0] == self._generation:  # else the content changed meanwhile
            self._keep(flight[1], cached)
        return cached

    def _keep(self, key: tuple[str, ...], cached: CachedBody) -> None:
        self._bodies[key] = cached
        self._bytes += _size(cached)
        while len(self._bodies) > 1 and (
            len(self._bodies) > MAX_CACHED or self._bytes > MAX_CACHED_BYTES
        ):
            self._bytes -= _size(self._bodies.popitem(last=False)[1])

    async def feed(self, fmt: str, query: FeedQuery, base_url: str | None = None) -> CachedBody:
        """``base_url``, when given, replaces the configured one in self links."""
        path = query.path or FEED_PATHS[fmt]
        settings = self.config.settings
        if base_url:
            settings = settings.model_copy(update={"public_url": base_url})

        def render(storage: Storage) -> CachedBody:
            rendered = render_from_storage(storage, settings, fmt, query.limit, query)
            return CachedBody.of(rendered.body, rendered.updated, CONTENT_TYPES[fmt])

        return await self.get((fmt, path, query.query_string(), base_url or ""), render)

    async def page(self, query: FeedQuery) -> CachedBody:
        def render(storage: Storage) -> CachedBody:
            rendered = render_page_from_storage(storage, self.config, query)
            return CachedBody.of(rendered.body, rendered.updated, PAGE_CONTENT_TYPE)

        return await self.get(("html", "/", query.query_string()), render)

    async def story(self, story_id: str) -> CachedBody | None:
        """A live story's reading view; None when the story has no articles."""

        def render(storage: Storage) -> CachedBody:
            rendered = render_story_from_storage(storage, self.config, story_id)
            if rendered is None:
                raise LookupError(story_id)
            return CachedBody.of(rendered.body, rendered.updated, PAGE_CONTENT_TYPE)

        try:
            return await self.get(("story", story_id), render)
        except LookupError:
            return None

    def _invalidate_if_changed(self) -> None:
        data_version = self.storage.data_version()
        if data_version == self._data_version:
            return
        self._data_version = data_version
        content_version = self.storage.content_version()
        if content_version != self._content_version:
            self._content_version = content_version
            self._generation += 1
            self._bodies.clear()
            self._bytes = 0


def _size(cached: CachedBody) -> int:
    return len(cached.body) + len(cached.gzipped)
