"""Feed health for admins (issue 17, item 10): never-fetched feeds are ``pending``
(not ok), /metrics carries the last refresh time, and an HTML page shows the table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.config import Config, load_config
from aggregator.publish.health import (
    feed_state,
    feed_states,
    format_table,
    render_health_page,
    summarize_health,
)
from aggregator.serve.server import create_app
from aggregator.storage import Storage

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

HEALTH_CONFIG = """\
settings:
  database: db.sqlite
feeds:
  - name: Fetched
    url: https://fetched.test/feed
  - name: Broken
    url: https://broken.test/feed
  - name: Brand new
    url: https://new.test/feed
  - name: Switched off
    url: https://off.test/feed
    enabled: false
"""


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "name": "Feed",
        "url": "https://feed.test/rss",
        "enabled": 1,
        "disabled_reason": None,
        "consecutive_failures": 0,
        "last_attempt_at": None,
        "last_success_at": None,
        "last_status": None,
        "last_error": None,
        "next_check_at": "2026-12-06T09:00:00+00:00",
        "permanent_url": None,
        "bytes_saved": 0,
        "articles": 0,
    }
    return base | changes


def test_a_feed_never_fetched_is_pending_not_ok() -> None:
    # Issue 17: /healthz counted never-fetched feeds as ok.
    assert feed_state(row()) == "pending"
    fetched = "2026-12-06T08:00:00+00:00"
    assert feed_state(row(last_attempt_at=fetched, last_success_at=fetched)) == "ok"
    assert feed_state(row(consecutive_failures=2, last_attempt_at="x")) == "failing"
    assert feed_state(row(enabled=0)) == "disabled"


def test_a_reset_feed_that_never_worked_is_pending_not_ok() -> None:
    # `feeds --reset` forgets the failures of a feed that never worked (a typo being
    # fixed): nothing is known to be good about it, so it is not ok until it works.
    tried = "2026-12-06T08:00:00+00:00"
    assert feed_state(row(last_attempt_at=tried, consecutive_failures=0)) == "pending"


def test_pending_feeds_are_counted_and_listed_but_do_not_degrade() -> None:
    fetched = "2026-12-06T08:00:00+00:00"
    rows = [
        row(name="Fetched", last_attempt_at=fetched, last_success_at=fetched),
        row(name="Brand new"),
    ]
    summary = summarize_health(rows)
    assert summary["status"] == "ok"
    assert summary["feeds"] == {"total": 2, "ok": 1, "failing": 0, "pending": 1}
    assert [feed["name"] for feed in summary["pending"]] == ["Brand new"]
    assert summary["last_refresh"] == "2026-12-06T08:00:00+00:00"
    assert feed_states(rows) == {"ok": 1, "failing": 0, "gone": 0, "disabled": 0, "pending": 1}


@pytest.fixture
def health_site(tmp_path: Path) -> Iterator[tuple[Config, Storage]]:
    path = tmp_path / "feeds.yaml"
    path.write_text(HEALTH_CONFIG)
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    fetched = storage.feed_state("https://fetched.test/feed").id
    broken = storage.feed_state("https://broken.test/feed").id
    with storage.transaction():
        storage.record_fetch_success(
            fetched, now=NOW, next_check=NOW + timedelta(hours=1), status=200,
            etag=None, last_modified=None, site_url="https://fetched.test/",
        )  # fmt: skip
    storage.record_fetch_failure(
        broken, now=NOW - timedelta(minutes=5), next_check=NOW + timedelta(hours=2),
        error="HTTP 503 <Service Unavailable>", status=503,
    )  # fmt: skip
    try:
        yield config, storage
    finally:
        storage.close()


async def _get(app: Any, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aggregator.test") as c:
        return [await c.get(path) for path in paths]


def test_healthz_reports_pending_feeds_separately(health_site) -> None:
    config, storage = health_site
    app = create_app(config)
    app.state.storage = storage  # what the lifespan would open, on this thread
    (health,) = asyncio.run(_get(app, "/healthz"))
    report = health.json()
    assert report["status"] == "degraded"  # Broken is failing; pending alone would be ok
    assert report["feeds"] == {"total": 3, "ok": 1, "failing": 1, "pending": 1}
    assert report["pending"] == [
        {"name": "Brand new", "url": "https://new.test/feed", "next_check": NOW.isoformat()}
    ]


def test_metrics_carry_the_last_refresh_time(health_site) -> None:
    # Issue 17: a stalled scheduler could not be alerted on.
    config, storage = health_site
    app = create_app(config)
    app.state.storage = storage
    (metrics,) = asyncio.run(_get(app, "/metrics"))
    lines = metrics.text.splitlines()
    gauge = [line for line in lines if line.startswith("aggregator_last_refresh_timestamp")]
    assert len(gauge) == 1 and float(gauge[0].split()[1]) == NOW.timestamp()
    assert 'aggregator_feeds{state="pending"} 1.0' in lines


def test_metrics_leave_the_last_refresh_out_before_the_first_fetch(
    storage: Storage, tmp_path: Path
) -> None:
    app = create_app(Config())
    app.state.storage = storage
    (metrics,) = asyncio.run(_get(app, "/metrics"))
    assert metrics.status_code == 200
    assert "aggregator_last_refresh_timestamp_seconds" not in metrics.text


# --- the CLI table -------------------------------------------------------------------


def test_feeds_table_tells_unnamed_feeds_on_one_host_apart() -> None:
    # `aggregator feeds` cut names at 24 characters: unnamed feeds (named by their URL)
    # on one host all read `http://127.0.0.1:34101/f`.
    base = "http://127.0.0.1:34101/feeds"
    urls = [f"{base}/naval.xml", f"{base}/land-systems.xml", f"{base}/naval.xml?part=2"]
    urls.append("https://www.naval-review.example/feed/")
    long_name = "Defence Procurement Weekly — Land Systems Desk"
    rows = [row(name=url, url=url) for url in urls]
    rows += [row(name=long_name), row(name="Naval", last_error="HTTP 404")]
    lines = format_table(rows, NOW).splitlines()
    labels = [line[: lines[0].index("STATE")].rstrip() for line in lines[1:]]
    assert len(set(labels)) == len(labels)  # every feed told apart
    assert labels[0] == "127.0.0.1:34101/…/naval.xml"
    assert labels[1].endswith("land-systems.xml") and labels[2].endswith("naval.xml?part=2")
    assert labels[3] == "naval-review.example/feed/"
    assert labels[4].startswith("Defence Procure") and labels[4].endswith("Systems Desk")
    assert "…" in labels[4] and labels[5] == "Naval"
    # Still a table for a 100-column terminal: every column before the note fits.
    assert all(len(line) <= 100 for line in lines if "HTTP 404" not in line)
    assert lines[-1].index("HTTP 404") < 100


# --- the HTML page -------------------------------------------------------------------


def test_health_page_shows_the_summary_and_every_feed(health_site) -> None:
    config, _ = health_site
    app = create_app(config)

    async def get_page() -> httpx.Response:
        async with app.router.lifespan_context(app):  # the render pool, as uvicorn starts it
            (page,) = await _get(app, "/feeds.html")
            return page

    page = asyncio.run(get_page())
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "Status <strong>degraded</strong> · 3 feeds: 1 ok, 1 failing, 1 pending" in html
    rows = {
        cells[0]: cells
        for cells in (
            [cell.split(">", 1)[1] if ">" in cell else cell for cell in row.split("</td><td")]
            for row in html.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")[1:]
        )
    }
    assert set(rows) == {"Fetched", "Broken", "Brand new", "Switched off"}
    assert 'class="state-failing">failing' in rows["Broken"][1]
    assert "HTTP 503 &lt;Service Unavailable&gt;" in rows["Broken"][-1]  # escaped
    assert "pending" in rows["Brand new"][1] and "disabled" in rows["Switched off"][1]


def test_health_page_shows_a_rejected_edit() -> None:
    report = {"status": "degraded", "feeds": {}, "config": {"error": "f.yaml:3: url: <bad>"}}
    html = render_health_page(report, [], NOW, "Site").decode()
    assert "edit rejected" in html and "f.yaml:3: url: &lt;bad&gt;" in html
