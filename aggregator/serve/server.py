"""The HTTP server: the merged feed in three formats, its slices, a page to browse it,
the sources as OPML, and a health check.

A feed is rendered once per change of the database, not per request: the rendered
bytes, their gzip, ETag and Last-Modified are cached in memory and conditional
requests are answered with 304. Change is detected cheaply with ``PRAGMA
data_version`` (it moves only when another connection commits), then confirmed with
the stories' version.

Renders run off the event loop (:mod:`aggregator.serve.render_pool`), so a burst of
uncached slices never holds up ``/healthz`` or cached feeds (issue 19). Requests for
a slice already being rendered wait for that render instead of starting another, and
at most MAX_RENDERS_IN_FLIGHT distinct renders wait or run: past that the server
answers 503 with Retry-After rather than queueing without end.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from aggregator import __version__, metrics
from aggregator.config import Config, OutputSlice
from aggregator.errors import BadRequest
from aggregator.publish.feeds import FEED_PATHS, item_id
from aggregator.publish.health import (
    feed_states,
    last_refresh,
    render_health_page,
    summarize_health,
)
from aggregator.publish.opml import CONTENT_TYPE as OPML_CONTENT_TYPE
from aggregator.publish.opml import render_opml
from aggregator.publish.page import FEED_HEALTH_PATH, STYLE_CSP_SOURCE, story_page_path
from aggregator.publish.query import FeedQuery, parse_feed_query
from aggregator.publish.story_page import render_missing_story
from aggregator.serve.cache import (
    PAGE_CONTENT_TYPE,
    RETRY_AFTER_SECONDS,
    CachedBody,
    FeedCache,
    Overloaded,
)
from aggregator.serve.render_pool import RenderPool
from aggregator.storage import Storage

log = logging.getLogger(__name__)


PAGE_SECURITY_POLICY = (
    f"default-src 'none'; style-src {STYLE_CSP_SOURCE}; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)


def _query_params(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getlist(key) for key in request.query_params}


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header, weak ones compared as strong."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _not_modified(request: Request, cached: CachedBody) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        return "*" in tags or bool(tags & {cached.etag, cached.gzip_etag})
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is not None:
            return cached.last_modified <= since
    return False


def _accepts_gzip(request: Request) -> bool:
    for coding in request.headers.get("accept-encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def cached_response(
    request: Request, cached: CachedBody, max_age: int, extra: Mapping[str, str] | None = None
) -> Response:
    """200 (gzipped when asked) or 304, with validators and caching headers."""
    use_gzip = _accepts_gzip(request)
    headers = {
        "ETag": cached.gzip_etag if use_gzip else cached.etag,
        "Last-Modified": cached.last_modified_header,
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        **(extra or {}),
    }
    if _not_modified(request, cached):
        return Response(status_code=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
        return Response(cached.gzipped, headers=headers, media_type=cached.content_type)
    return Response(cached.body, headers=headers, media_type=cached.content_type)


def _bad_request(exc: BadRequest) -> Response:
    return PlainTextResponse(f"{exc}\n", status_code=400)


def _overloaded() -> Response:
    return PlainTextResponse(
        "busy rendering other requests; retry shortly\n",
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@functools.lru_cache(maxsize=64)
def _plain_query(default_limit: int, output: OutputSlice | None) -> FeedQuery:
    """The slice of a request without a query string: what feed readers poll, parsed
    once instead of per request."""
    return parse_feed_query({}, default_limit, output)


# A Host header worth linking to: a name or address, and a port; nothing else.
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def request_base_url(request: Request, public_url: str) -> str | None:
    """With ``public_url`` unset, a feed's self links name the address its reader used
    (a plain ``Host``; FreshRSS does the same), not the listen address: 0.0.0.0 or a
    container's port mean nothing to a reader. None: keep the configured base."""
    host = request.headers.get("host", "")
    if public_url or not _PLAIN_HOST.fullmatch(host):
        return None
    return f"{request.url.scheme}://{host}"


def _feed_endpoint(fmt: str, output: OutputSlice | None = None) -> Any:
    async def endpoint(request: Request) -> Response:
        cache: FeedCache = request.app.state.cache
        settings = cache.config.settings
        try:
            query = (
                parse_feed_query(_query_params(request), settings.feed_limit, output)
                if request.scope.get("query_string")
                else _plain_query(settings.feed_limit, output)
            )
        except BadRequest as exc:
            return _bad_request(exc)
        try:
            cached = await cache.feed(fmt, query, request_base_url(request, settings.public_url))
        except Overloaded:
            return _overloaded()
        return cached_response(request, cached, settings.cache_max_age)

    return endpoint


async def page(request: Request) -> Response:
    cache: FeedCache = request.app.state.cache
    settings = cache.config.settings
    try:
        query = parse_feed_query(_query_params(request), settings.feed_limit)
    except BadRequest as exc:
        return _bad_request(exc)
    security = {"Content-Security-Policy": PAGE_SECURITY_POLICY}
    try:
        cached = await cache.page(query)
    except Overloaded:
        return _overloaded()
    return cached_response(request, cached, settings.cache_max_age, security)


async def sources_opml(request: Request) -> Response:
    config: Config = request.app.state.cache.config
    cached: CachedBody = request.app.state.opml
    return cached_response(request, cached, config.settings.cache_max_age)


async def story_endpoint(request: Request) -> Response:
    """One story as JSON, with how each source joined. A merged story's old id answers
    301 with the surviving story's URL, so links to it keep working."""
    storage: Storage = request.app.state.storage
    story_id = request.path_params["story_id"]
    live = storage.resolve_story_id(story_id)
    if live is None:
        return JSONResponse({"error": f"no story has the id {story_id}"}, status_code=404)
    if live != story_id:
        return RedirectResponse(f"/stories/{live}", status_code=301)
    story = storage.published_story(live)
    if story is None:
        return JSONResponse({"error": f"story {story_id} has no articles"}, status_code=404)
    return JSONResponse(
        {
            "id": item_id(story),
            "story_id": story.id,
            "title": story.title,
            "url": story.link,
            "date_published": story.published.isoformat(),
            "date_modified": story.updated.isoformat(),
            "aliases": storage.story_aliases(live),
            "sources": [
                {
                    "url": source.url,
                    "title": source.title,
                    "feed": source.feed_name,
                    "relation": source.relation,
                    "score": source.score,
                }
                for source in story.sources
            ],
        }  # fmt: skip
    )


async def story_page_endpoint(request: Request) -> Response:
    """A story's reading view (issue 17). A merged story's old id answers 301 with the
    surviving story's view, as ``/stories/ID`` does for its JSON."""
    cache: FeedCache = request.app.state.cache
    settings = cache.config.settings
    story_id = request.path_params["story_id"]
    live = cache.storage.resolve_story_id(story_id)
    if live is not None and live != story_id:
        return RedirectResponse(story_page_path(live), status_code=301)
    try:
        cached = None if live is None else await cache.story(live)
    except Overloaded:
        return _overloaded()
    security = {"Content-Security-Policy": PAGE_SECURITY_POLICY}
    if cached is None:
        missing = render_missing_story(story_id, settings.feed_title)
        return Response(missing, 404, security, media_type=PAGE_CONTENT_TYPE)
    return cached_response(request, cached, settings.cache_max_age, security)


async def healthz(request: Request) -> JSONResponse:
    storage: Storage = request.app.state.storage
    return JSONResponse(_full_health_report(request, storage, storage.feed_health()))


async def health_page(request: Request) -> Response:
    """/healthz and the `aggregator feeds` table as a page for people (issue 17);
    rendered on the render pool, like every page that grows with the data."""
    cache: FeedCache = request.app.state.cache
    config: Config = request.app.state.config

    def render(storage: Storage) -> bytes:
        rows = storage.feed_health()
        report = _full_health_report(request, storage, rows)
        return render_health_page(report, rows, datetime.now(UTC), config.settings.feed_title)

    try:
        body = await cache.run(render)
    except Overloaded:
        return _overloaded()
    headers = {
        "Content-Security-Policy": PAGE_SECURITY_POLICY,
        "Cache-Control": "no-cache",  # relative times: always ask again
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body, headers=headers, media_type=PAGE_CONTENT_TYPE)


def _full_health_report(
    request: Request, storage: Storage, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    report = health_report(storage, rows)
    # Absent when a test builds the app state by hand.
    config_status: Callable[[], dict[str, Any]] | None = getattr(
        request.app.state, "config_status", None
    )
    if config_status is not None:  # the daemon's live reload: a rejected edit degrades
        report["config"] = config_status()
        if report["config"]["error"]:
            report["status"] = "degraded"
    refresh_status = getattr(request.app.state, "refresh_status", None)
    if refresh_status is not None:  # the daemon's cycles: a full disk degrades (issue 19)
        report["refresh"] = refresh_status()
        if report["refresh"]["error"]:
            report["status"] = "degraded"
    return report


def health_report(storage: Storage, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A summary of feed health: ok when no enabled feed is failing or gone."""
    counts = storage.counts()
    summary = summarize_health(storage.feed_health() if rows is None else rows)
    return {
        "status": summary.pop("status"),
        "version": __version__,
        **summary,
        "articles": counts["articles"],
        "stories": counts["stories"],
    }


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format: pipeline counters plus gauges read now from storage."""
    storage: Storage = request.app.state.storage

    def snapshot() -> metrics.StorageFacts:
        rows = storage.feed_health()
        refreshed = last_refresh(rows)
        return metrics.StorageFacts(
            counts=storage.counts(),
            feeds=feed_states(rows),
            last_refresh=None if refreshed is None else datetime.fromisoformat(refreshed),
        )

    body = metrics.render(metrics.StorageCollector(snapshot))
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _mtime(path: Path) -> float:
    """When feeds.yaml last changed: the Last-Modified of /sources.opml."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def create_app(
    config: Config,
    *,
    config_status: Callable[[], dict[str, Any]] | None = None,
    refresh_status: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """The ASGI app. It opens its own read connection to the database on startup.
    ``config_status`` (the daemon's live reload) is shown under ``config`` in /healthz,
    ``refresh_status`` (the daemon's refresh cycles) under ``refresh``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = Storage.open(config.database_path)
        pool = RenderPool(config.database_path)
        app.state.storage = storage
        app.state.config_status = config_status
        app.state.refresh_status = refresh_status
        app.state.cache = FeedCache(storage, config, pool)
        app.state.opml = CachedBody.of(
            render_opml(config.feeds, f"{config.settings.feed_title}: sources"),
            datetime.fromtimestamp(_mtime(config.path), UTC),
            OPML_CONTENT_TYPE,
        )
        try:
            yield
        finally:
            pool.close()
            storage.close()

    routes = [
        Route(path, _feed_endpoint(fmt), methods=["GET", "HEAD"])
        for fmt, path in FEED_PATHS.items()
    ]
    routes += [
        Route(output.path, _feed_endpoint(output.format, output), methods=["GET", "HEAD"])
        for output in config.outputs
    ]
    routes += [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/sources.opml", sources_opml, methods=["GET", "HEAD"]),
    ]
    routes += [Route("/healthz", healthz), Route("/metrics", metrics_endpoint)]
    routes += [Route(FEED_HEALTH_PATH, health_page, methods=["GET", "HEAD"])]
    # The reading view first: "/stories/{story_id}" would match "ID.html" too.
    routes += [
        Route("/stories/{story_id}.html", story_page_endpoint, methods=["GET", "HEAD"]),
        Route("/stories/{story_id}", story_endpoint, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.config = config  # set before startup: what needs no database connection
    return app
