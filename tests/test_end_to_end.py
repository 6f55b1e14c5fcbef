"""The whole service, end to end, over real sockets on 127.0.0.1.

The bundled sample site (aggregator/demo/site, invented outlets) is served on loopback.
`aggregator refresh` runs as a real process against it, twice; then `aggregator run`
serves the merged feed, which is read back with feedparser and json. The site's
manifest says which articles are copies of one story and which phrases are body
text or page boilerplate.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from aggregator.demo import DemoSite, demo_config_text
from aggregator.storage import Storage
from aggregator.urls import canonicalize_url

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGGREGATOR, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Deployment:
    """A sample site, a config pointing at it, and the outputs of two refreshes."""

    def __init__(self, site: DemoSite, config: Path, database: Path, listen: str) -> None:
        self.site = site
        self.config = config
        self.database = database
        self.listen = listen
        self.manifest: dict[str, Any] = site.manifest()
        self.refreshes: list[subprocess.CompletedProcess[str]] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.listen}"

    def article_rows(self) -> list[dict[str, Any]]:
        storage = Storage.open(self.database)
        try:
            return list(storage.db.query("SELECT * FROM articles ORDER BY id"))
        finally:
            storage.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("e2e")
    with DemoSite() as site:
        listen = f"127.0.0.1:{free_port()}"
        config = tmp / "feeds.yaml"
        database = tmp / "aggregator.db"
        config.write_text(demo_config_text(site, listen=listen, database=database))
        deployed = Deployment(site, config, database, listen)
        deployed.refreshes.append(run_cli(config, "refresh"))
        deployed.refreshes.append(run_cli(config, "refresh"))
        yield deployed


@pytest.fixture(scope="module")
def served(deployment: Deployment) -> Iterator[dict[str, httpx.Response]]:
    """Start the daemon, read every published format, then stop it with SIGTERM."""
    daemon = subprocess.Popen(
        [*AGGREGATOR, "--config", str(deployment.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        responses = _read_feeds(deployment.base_url)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
        responses["_exit"] = httpx.Response(200, text=f"{daemon.returncode}\n{stderr}")
        yield responses
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()


def _read_feeds(base_url: str) -> dict[str, httpx.Response]:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while True:
            try:
                health = client.get("/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        feeds = {
            "healthz": health,
            "rss": client.get("/feed.xml"),
            "atom": client.get("/feed.atom"),
            "json": client.get("/feed.json"),
        }
        first = feeds["json"].json()["items"][0]["id"].rsplit(":", 1)[-1]
        feeds["story"] = client.get(f"/stories/{first}")
        feeds["no-story"] = client.get("/stories/nothing-here")
        return feeds


def expected_groups(deployment: Deployment) -> list[set[str]]:
    return [
        {canonicalize_url(url) for url in group["items"]} for group in deployment.manifest["groups"]
    ]


def story_urls(item: dict[str, Any]) -> set[str]:
    return {canonicalize_url(source["url"]) for source in item["_aggregator"]["sources"]}


# -- refresh ---------------------------------------------------------------------


def test_first_refresh_stores_every_item_and_reports_it(deployment: Deployment) -> None:
    first = deployment.refreshes[0]
    total = sum(outlet["items"] for outlet in deployment.manifest["outlets"])
    assert first.returncode == 0, first.stderr
    assert (
        f"{len(deployment.manifest['outlets'])} feeds refreshed: {total} new articles"
        in first.stdout
    )
    assert len(deployment.article_rows()) == total


def test_second_refresh_adds_nothing(deployment: Deployment) -> None:
    second = deployment.refreshes[1]
    assert second.returncode == 0, second.stderr
    assert "0 new articles" in second.stdout
    assert "not modified" in second.stdout  # the site answered our conditional GETs with 304
    keys = [(row["feed_id"], row["entry_key"]) for row in deployment.article_rows()]
    assert len(keys) == len(set(keys))


def test_page_without_text_falls_back_to_the_feed_and_says_so(deployment: Deployment) -> None:
    fallback_urls = {canonicalize_url(url) for url in deployment.manifest["fallback"]}
    rows = {row["canonical_url"]: row for row in deployment.article_rows()}
    for url in fallback_urls:
        assert rows[url]["extraction_status"] == "fallback"
        assert "used the feed's text" in rows[url]["extraction_note"]
        assert len(rows[url]["text"]) > 200


def test_feed_command_prints_only_the_feed(deployment: Deployment) -> None:
    result = run_cli(deployment.config, "feed", "--format", "json", "--limit", "1000")
    assert result.returncode == 0
    items = json.loads(result.stdout)["items"]
    assert len(items) == len(deployment.manifest["groups"])


# -- the published feeds -------------------------------------------------------------


def test_one_story_per_duplicate_group_listing_every_source(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    items = served["json"].json()["items"]
    published = sorted((story_urls(item) for item in items), key=sorted)
    assert published == sorted(expected_groups(deployment), key=sorted)


def test_copies_and_related_reports_are_marked_as_such(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    kinds = {
        frozenset(canonicalize_url(url) for url in group["items"]): group["kind"]
        for group in deployment.manifest["groups"]
    }
    for item in served["json"].json()["items"]:
        relations = [source["relation"] for source in item["_aggregator"]["sources"]]
        assert relations[0] == "lead"
        assert item["url"] == item["_aggregator"]["sources"][0]["url"]
        kind = kinds[frozenset(story_urls(item))]
        expected = {"related": {"related"}, "single": set()}.get(kind, {"duplicate"})
        assert set(relations[1:]) == expected, item["title"]


def test_item_body_credits_other_outlets(served: dict[str, httpx.Response]) -> None:
    items = {item["title"]: item for item in served["json"].json()["items"]}
    wire = next(item for title, item in items.items() if "coastal patrol ship" in title)
    related = next(item for title, item in items.items() if "Skyward Lance" in title)
    assert "Republished by" in wire["content_html"]
    assert "Also reported by" in related["content_html"]


def test_full_text_present_and_boilerplate_absent(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    items = served["json"].json()["items"]
    bodies = {canonicalize_url(item["url"]): item["content_text"] for item in items}
    everything = "\n".join(item["content_text"] + item["content_html"] for item in items)
    for url, phrase in deployment.manifest["body_phrases"].items():
        url = canonicalize_url(url)
        if url in bodies:  # copies that are not the lead are linked, not repeated
            assert phrase in bodies[url], url
    for phrase in deployment.manifest["boilerplate_phrases"]:
        assert phrase not in everything, phrase
    assert "<script" not in everything


def test_rss_reads_back_in_feedparser(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    response = served["rss"]
    assert response.headers["content-type"].startswith("application/rss+xml")
    parsed = feedparser.parse(io.BytesIO(response.content))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == len(deployment.manifest["groups"])
    for entry in parsed.entries:
        assert entry.id.startswith("urn:aggregator:story:")
        assert len(entry.content[0].value) > 500  # the full text, not a teaser
        assert "Source: " in entry.description  # the lead credited (issue 6)


def test_atom_lists_each_source_as_a_related_link(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    parsed = feedparser.parse(io.BytesIO(served["atom"].content))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    related = {
        frozenset(canonicalize_url(link.href) for link in entry.links if link.rel == "related")
        for entry in parsed.entries
    }
    assert related == {frozenset(group) for group in expected_groups(deployment)}


def test_ids_match_across_formats(served: dict[str, httpx.Response]) -> None:
    json_ids = [item["id"] for item in served["json"].json()["items"]]
    rss_ids = [entry.id for entry in feedparser.parse(io.BytesIO(served["rss"].content)).entries]
    atom_ids = [entry.id for entry in feedparser.parse(io.BytesIO(served["atom"].content)).entries]
    assert json_ids == rss_ids == atom_ids


def test_each_story_has_its_own_json_with_sources(served: dict[str, httpx.Response]) -> None:
    item = served["json"].json()["items"][0]
    story = served["story"].json()
    assert story["id"] == item["id"] and story["title"] == item["title"]
    assert [s["url"] for s in story["sources"]] == [
        s["url"] for s in item["_aggregator"]["sources"]
    ]
    assert served["no-story"].status_code == 404


def test_healthz_summarises_feed_health(
    deployment: Deployment, served: dict[str, httpx.Response]
) -> None:
    health = served["healthz"].json()
    assert health["status"] == "ok"
    assert health["feeds"] == {"total": 4, "ok": 4, "failing": 0, "pending": 0}
    assert health["stories"] == len(deployment.manifest["groups"])


def test_daemon_stops_cleanly_on_sigterm(served: dict[str, httpx.Response]) -> None:
    code, _, stderr = served["_exit"].text.partition("\n")
    assert code == "0", stderr
    assert "stopped" in stderr


def test_refresh_with_an_unusable_config_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds:\n  - url: ftp://nope\n")
    result = run_cli(config, "refresh")
    assert result.returncode == 1
    assert f"{config}:2" in result.stderr


if os.name != "posix":  # pragma: no cover
    pytestmark = pytest.mark.skip("signals are POSIX")
