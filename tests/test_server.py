"""The HTTP server: formats, content types, conditional requests, health."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from aggregator.clusterer import Assignment
from aggregator.config import FeedSource, load_config
from aggregator.server import create_app
from aggregator.storage import NewArticle, Storage

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def add_article(storage: Storage, feed_id: int, key: str, story: str | None) -> None:
    article = NewArticle(
        feed_id=feed_id, entry_key=key, guid=None, url=f"https://naval.test/{key}",
        canonical_url=f"https://naval.test/{key}", title=f"Frigate {key} floated out",
        author=None, summary="", feed_content="", text="Body text.", html="<p>Body text.</p>",
        image=None, published_at=NOW, fetched_at=NOW, extraction_status="extracted",
        extraction_note="", signature=None, bands=(),
    )  # fmt: skip
    assignment = Assignment(story, "url" if story else "new", 1.0 if story else None)
    with storage.transaction():
        storage.add_article(article, assignment, f"story-{key}")


def serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Run the app with uvicorn on a free loopback port in a thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[httpx.Client, Storage]]:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "settings:\n  database: db.sqlite\nfeeds:\n  - name: Naval\n    url: https://naval.test/feed\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds([FeedSource(url="https://naval.test/feed", name="Naval")], NOW)
    add_article(storage, 1, "a", None)
    server, thread, base_url = serve(create_app(config))
    try:
        with httpx.Client(base_url=base_url) as test_client:
            yield test_client, storage
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        storage.close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/feed.xml", "application/rss+xml"),
        ("/feed.atom", "application/atom+xml"),
        ("/feed.json", "application/feed+json"),
    ],
)
def test_each_format_has_its_content_type_and_validators(
    client, path: str, content_type: str
) -> None:
    test_client, _ = client
    response = test_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["etag"] and response.headers["last-modified"]
    head = test_client.head(path)
    assert head.status_code == 200 and head.headers["etag"] == response.headers["etag"]


def test_conditional_request_gets_304_until_the_feed_changes(client) -> None:
    test_client, storage = client
    first = test_client.get("/feed.json")
    etag = first.headers["etag"]
    assert test_client.get("/feed.json", headers={"If-None-Match": etag}).status_code == 304
    add_article(storage, 1, "b", "story-a")  # a second source joins the story
    changed = test_client.get("/feed.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    item = changed.json()["items"][0]
    assert len(item["_aggregator"]["sources"]) == 2
    assert item["id"] == first.json()["items"][0]["id"]  # the story keeps its id


def test_limit_parameter_is_bounded(client) -> None:
    test_client, storage = client
    add_article(storage, 1, "c", None)
    assert len(test_client.get("/feed.json?limit=1").json()["items"]) == 1
    assert len(test_client.get("/feed.json?limit=nonsense").json()["items"]) == 2


def test_healthz_reports_counts(client) -> None:
    test_client, _ = client
    health = test_client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["stories"] == 1 and health["articles"] == 1
    assert health["feeds"] == {"total": 1, "ok": 1, "failing": 0}
