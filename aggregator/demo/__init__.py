"""A loopback web server for the bundled sample outlets (``aggregator demo``, tests).

The sample site under ``site/`` is invented: four defence-news outlets with feeds and
article pages, including a wire story republished by two outlets, one URL listed by
two feeds and a page whose text cannot be extracted. Every ``{{BASE}}`` in a file is
replaced with the server's own base URL, so links point back at it. Responses carry an
ETag and answer ``If-None-Match`` with 304, like a well-behaved publisher.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SITE_DIR = Path(__file__).parent / "site"
PLACEHOLDER = b"{{BASE}}"
CONTENT_TYPES = {
    ".xml": "application/xml",
    ".html": "text/html",
    ".json": "application/json",
}


class _SiteHandler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, site: DemoSite, **kwargs: Any) -> None:
        self.site = site
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        self.site.hits[path] = self.site.hits.get(path, 0) + 1
        body = self.site.read(path)
        if body is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", self.site.content_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class DemoSite:
    """Serve ``root`` on 127.0.0.1 in a daemon thread. Use as a context manager."""

    def __init__(self, root: Path = SITE_DIR, port: int = 0) -> None:
        self.root = root
        self.hits: dict[str, int] = {}
        self.overrides: dict[str, bytes] = {}  # tests replace a file's body here
        handler = partial(_SiteHandler, site=self)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def manifest(self) -> dict[str, Any]:
        """manifest.json with ``{{BASE}}`` filled in: outlets, expected groups, phrases."""
        data = self.read("/manifest.json")
        assert data is not None
        loaded: dict[str, Any] = json.loads(data)
        return loaded

    def read(self, path: str) -> bytes | None:
        if path in self.overrides:
            return self.overrides[path].replace(PLACEHOLDER, self.base_url.encode())
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.is_file():
            return None
        return target.read_bytes().replace(PLACEHOLDER, self.base_url.encode())

    def content_type(self, path: str) -> str:
        return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")

    def start(self) -> DemoSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def demo_config_text(site: DemoSite, *, listen: str, database: Path) -> str:
    """A feeds.yaml pointing at the sample outlets served by ``site``."""
    outlets = site.manifest()["outlets"]
    lines = [
        "settings:",
        f"  listen: {json.dumps(listen)}",
        f"  database: {json.dumps(str(database))}",
        "  refresh_interval: 5m",
        "  allow_private_addresses: true   # the sample outlets live on loopback",
        "  feed_title: Aggregator demo",
        "feeds:",
    ]
    for outlet in outlets:
        lines += [
            f"  - name: {json.dumps(outlet['name'])}",
            f"    url: {json.dumps(site.base_url + outlet['feed'])}",
            f"    tags: {json.dumps(outlet.get('tags', []))}",
        ]
    return "\n".join(lines) + "\n"
