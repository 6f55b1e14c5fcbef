"""Small loopback helpers for the issue-17/19 hardening tests: a site on 127.0.0.1
whose every path is a route the test sets, and one refresh of the real pipeline
against it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aggregator.config import load_config
from aggregator.pipeline import PipelineContext, RefreshOutcome, refresh_feeds
from aggregator.publish.feeds import FORMATS
from aggregator.publish.output import render_from_storage
from aggregator.storage import Storage


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once this is set (or after 60 s)


class _Handler(BaseHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.site.hits.append(self.path)
        route = self.site.routes.get(self.path, self.site.fallback)
        if route.hold is not None:
            route.hold.wait(timeout=60)
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site:
    """Serves ``routes`` (path -> Route) on 127.0.0.1, ``fallback`` at every other path
    (a 404 unless given), and records each path asked for."""

    def __init__(
        self,
        routes: dict[str, Route] | None = None,
        host: str = "127.0.0.1",
        fallback: Route = Route(404, b"not here"),
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.fallback = fallback
        self.hits: list[str] = []
        handler = type("Handler", (_Handler,), {"site": self})
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.port = int(self.server.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Refreshed:
    """One refresh's outcomes, every published format and the stored articles."""

    outcomes: list[RefreshOutcome]
    rendered: dict[str, str]
    articles: list[dict[str, Any]]
    feeds: list[dict[str, Any]]


def refresh_once(tmp_path: Path, feeds_yaml: str) -> Refreshed:
    """Write feeds.yaml (``database`` and ``workers`` are set here), refresh every
    feed once with the real pipeline, render every format from the database."""
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text("settings:\n  database: db.sqlite\n  workers: 0\n" + feeds_yaml)
    config = load_config(config_path)
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0)
    try:
        outcomes = refresh_feeds(ctx, config.enabled_feeds)
        rendered = {
            fmt: render_from_storage(storage, config.settings, fmt, 100).body.decode()
            for fmt in FORMATS
        }
        articles = list(storage.db.query("SELECT * FROM articles ORDER BY id"))
        feeds = storage.feed_health()
    finally:
        ctx.close()
        storage.close()
    return Refreshed(outcomes, rendered, articles, feeds)
