"""The HTTP server: the merged feed in three formats, and a health check.

A feed is rendered once per change of the database, not per request: the rendered
bytes, their ETag and Last-Modified are cached in memory and conditional requests are
answered with 304. Change is detected cheaply with ``PRAGMA data_version`` (it moves
only when another connection commits), then confirmed with the stories' version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from aggregator import __version__
from aggregator.config import Config
from aggregator.output import render_from_storage
from aggregator.publisher import CONTENT_TYPES, FEED_PATHS
from aggregator.storage import Storage

log = logging.getLogger(__name__)

MAX_LIMIT = 1000


@dataclass(frozen=True)
class RenderedFeed:
    body: bytes
    etag: str
    last_modified: str


class FeedCache:
    """Rendered feeds keyed by (format, limit), valid for one content version."""

    def __init__(self, storage: Storage, config: Config) -> None:
        self.storage = storage
        self.config = config
        self._data_version: int | None = None
        self._content_version = ""
        self._feeds: dict[tuple[str, int], RenderedFeed] = {}

    def get(self, fmt: str, limit: int) -> RenderedFeed:
        self._invalidate_if_changed()
        key = (fmt, limit)
        if key not in self._feeds:
            self._feeds[key] = self._render(fmt, limit)
        return self._feeds[key]

    def _invalidate_if_changed(self) -> None:
        row = next(iter(self.storage.db.query("PRAGMA data_version")))
        data_version = int(next(iter(row.values())))
        if data_version == self._data_version:
            return
        self._data_version = data_version
        content_version = self.storage.content_version()
        if content_version != self._content_version:
            self._content_version = content_version
            self._feeds.clear()

    def _render(self, fmt: str, limit: int) -> RenderedFeed:
        rendered = render_from_storage(self.storage, self.config.settings, fmt, limit)
        digest = hashlib.sha256(rendered.body).hexdigest()[:32]
        return RenderedFeed(
            rendered.body, f'"{digest}"', format_datetime(rendered.updated, usegmt=True)
        )


def _limit(request: Request, default: int) -> int:
    try:
        value = int(request.query_params.get("limit", default))
    except ValueError:
        return default
    return max(1, min(value, MAX_LIMIT))


def _feed_endpoint(fmt: str) -> Any:
    async def endpoint(request: Request) -> Response:
        cache: FeedCache = request.app.state.cache
        feed = cache.get(fmt, _limit(request, cache.config.settings.feed_limit))
        headers = {
            "ETag": feed.etag,
            "Last-Modified": feed.last_modified,
            "Cache-Control": "public, max-age=60",
        }
        if request.headers.get("if-none-match") == feed.etag:
            return Response(status_code=304, headers=headers)
        return Response(feed.body, media_type=CONTENT_TYPES[fmt], headers=headers)

    return endpoint


async def healthz(request: Request) -> JSONResponse:
    storage: Storage = request.app.state.storage
    return JSONResponse(health_report(storage))


def health_report(storage: Storage) -> dict[str, Any]:
    """A summary of feed health: ok when no enabled feed is failing."""
    counts = storage.counts()
    feeds = [feed for feed in storage.feed_health() if feed["enabled"]]
    failing = [feed for feed in feeds if feed["consecutive_failures"]]
    attempts = [feed["last_attempt_at"] for feed in feeds if feed["last_attempt_at"]]
    return {
        "status": "ok" if not failing else "degraded",
        "version": __version__,
        "feeds": {"total": len(feeds), "ok": len(feeds) - len(failing), "failing": len(failing)},
        "failing": [
            {"name": feed["name"], "url": feed["url"], "error": feed["last_error"]}
            for feed in failing
        ],
        "last_refresh": max(attempts, default=None),
        "articles": counts["articles"],
        "stories": counts["stories"],
    }


async def index(request: Request) -> Response:
    return RedirectResponse(FEED_PATHS["atom"], status_code=302)


def create_app(config: Config) -> Starlette:
    """The ASGI app. It opens its own read connection to the database on startup."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = Storage.open(config.database_path)
        app.state.storage = storage
        app.state.cache = FeedCache(storage, config)
        try:
            yield
        finally:
            storage.close()

    routes = [
        Route(path, _feed_endpoint(fmt), methods=["GET", "HEAD"])
        for fmt, path in FEED_PATHS.items()
    ]
    routes += [Route("/healthz", healthz), Route("/", index)]
    return Starlette(routes=routes, lifespan=lifespan)
