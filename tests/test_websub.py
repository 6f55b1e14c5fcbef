"""WebSub (issue 6): with `websub_hub` set, every feed advertises the hub and each
publish that changed the feeds pings it once per feed, and only then."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import httpx

from aggregator.config import load_config
from aggregator.pipeline import PipelineContext, publish
from aggregator.storage import Storage
from tests.test_server import NOW, add_article

CONFIG = """\
settings:
  database: db.sqlite
  public_url: https://news.example.org
  websub_hub: https://hub.example.net/
feeds:
  - name: Naval
    url: https://naval.test/feed
outputs:
  - path: /naval.atom
"""


def test_publish_pings_the_hub_only_when_the_feeds_changed(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    pings: list[dict[str, list[str]]] = []
    answers = iter([204, 204, 204, 503, 204, 204, 204, 204])

    def hub(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "https://hub.example.net/"
        pings.append(parse_qs(request.content.decode()))
        return httpx.Response(next(answers))

    client = httpx.Client(transport=httpx.MockTransport(hub))
    ctx = PipelineContext(config, storage, client, client, pool=None)  # type: ignore[arg-type]
    try:
        add_article(storage, 1, "a", None)
        publish(ctx)
        topics = [ping["hub.url"][0] for ping in pings]
        assert topics == [
            "https://news.example.org/feed.xml",
            "https://news.example.org/feed.atom",
            "https://news.example.org/feed.json",
            "https://news.example.org/naval.atom",
        ]
        assert all(ping["hub.mode"] == ["publish"] for ping in pings)
        # The hub failed on the fourth feed: the next publish tries again.
        assert len(pings) == 4
        publish(ctx)
        assert len(pings) == 8
        publish(ctx)  # nothing changed: no ping
        assert len(pings) == 8
    finally:
        client.close()
        storage.close()
