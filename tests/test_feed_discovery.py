"""A site's address where its feed's belongs (issue 17, item 3).

A feed URL that has never been read and answers a web page is followed to the feed
the page advertises (``<link rel="alternate">``, then the usual paths), fetched
through our own client; the feed is used at once and recorded like a permanent move,
shown by ``aggregator feeds`` and ``/healthz``. Loopback sites stand in for the web.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.models import FetchResult
from aggregator.parse.discover import MAX_CANDIDATES, feed_candidates, looks_like_html
from aggregator.publish.health import summarize_health
from tests.loopback import Route, Site, refresh_once

HTML = {"Content-Type": "text/html; charset=utf-8"}
XML = {"Content-Type": "application/rss+xml"}


def _page(*links: str) -> bytes:
    head = "".join(links)
    return (
        f"<!doctype html><html><head><title>Harbour Watch</title>{head}</head>"
        "<body><h1>Harbour Watch</h1><p>Naval news from the northern ports.</p></body></html>"
    ).encode()


def _alternate(href: str, kind: str = "application/rss+xml") -> str:
    return f'<link rel="alternate" type="{kind}" title="Feed" href="{href}">'


RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour Watch</title>'
    b"<link>https://harbour.example/</link>"
    b"<item><title>Minehunter returns to port</title><guid>hw-1</guid>"
    b"<description>The minehunter returned after a month at sea.</description></item>"
    b"<item><title>Dredging of the inner basin starts</title><guid>hw-2</guid>"
    b"<description>Dredgers began deepening the inner basin.</description></item>"
    b"</channel></rss>"
)


def test_candidates_are_the_advertised_feeds_then_the_usual_paths() -> None:
    url = "http://127.0.0.1:8000/news/"
    page = _page(
        _alternate("feed/"),
        _alternate("/comments/feed/"),  # a comments feed is not the site's feed
        _alternate("javascript:alert(1)"),
        _alternate("https://feeds.example/harbour.atom", "application/atom+xml"),
    )
    candidates = feed_candidates(FetchResult(url, url, 200, page, {"content-type": "text/html"}))
    assert candidates[:2] == [
        "http://127.0.0.1:8000/news/feed/",
        "https://feeds.example/harbour.atom",
    ]
    assert candidates[2:] == [  # the usual paths under the page's folder, then the root's
        "http://127.0.0.1:8000/news/feed",
        "http://127.0.0.1:8000/news/rss",
        "http://127.0.0.1:8000/news/rss.xml",
        "http://127.0.0.1:8000/news/index.xml",
        "http://127.0.0.1:8000/feed",
        "http://127.0.0.1:8000/feed/",
    ]
    assert len(candidates) == MAX_CANDIDATES


@pytest.mark.parametrize(
    ("page_url", "first"),
    [
        ("https://site.example/blog/", "https://site.example/blog/feed"),
        ("https://site.example/blog/2026/frigate.html?x=1", "https://site.example/blog/2026/feed"),
        ("https://site.example/blog", "https://site.example/feed"),  # a page, not a folder
        ("https://site.example/", "https://site.example/feed"),
    ],
)
def test_a_page_in_a_folder_is_looked_for_there_before_the_root(page_url: str, first: str) -> None:
    """As Miniflux does: a site pasted with a path (a blog under /blog/) has its feed
    there more often than at the root. The cap on fetches stays."""
    page = FetchResult(page_url, page_url, 200, _page(), {"content-type": "text/html"})
    candidates = feed_candidates(page)
    assert candidates[0] == first
    assert len(candidates) <= MAX_CANDIDATES
    assert "https://site.example/feed" in candidates  # the root is still tried


@pytest.mark.parametrize(
    ("headers", "body", "html"),
    [
        (HTML, b"anything", True),
        ({"content-type": "application/xhtml+xml"}, b"<x/>", True),
        ({}, b"\n  <!DOCTYPE html><html>", True),
        ({}, b"<html><body>", True),
        (XML, b"<rss/>", False),
        ({}, b'<?xml version="1.0"?><feed/>', False),
    ],
)
def test_a_web_page_is_told_from_a_feed(headers: dict[str, str], body: bytes, html: bool) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}  # as fetched
    result = FetchResult("http://a.test/", "http://a.test/", 200, body, lowered)
    assert looks_like_html(result) is html


def _feeds_yaml(url: str) -> str:
    return f"feeds:\n  - name: Harbour Watch\n    url: {url}\n    extract: false\n"


def test_the_advertised_feed_is_used_and_recorded_like_a_move(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Site() as site:
        site.routes["/"] = Route(body=_page(_alternate("/feed/")), headers=HTML)
        site.routes["/feed/"] = Route(body=RSS, headers=XML)
        with caplog.at_level(logging.WARNING):
            first = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/"))
        second = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/"))
    feed_url = f"{site.base_url}/feed/"
    [outcome] = first.outcomes
    assert outcome.status == "ok" and outcome.moved_to == feed_url
    assert len(first.articles) == 2
    assert f"using the feed it advertises, {feed_url}: put that URL in feeds.yaml" in caplog.text
    assert site.hits == ["/", "/feed/", "/feed/"]  # the second refresh goes straight there
    assert [outcome.status for outcome in second.outcomes] == ["not-modified"]
    moved = summarize_health(second.feeds)["moved"]
    assert moved == [{"name": "Harbour Watch", "url": f"{site.base_url}/", "moved_to": feed_url}]
    table = CliRunner().invoke(cli, ["--config", str(tmp_path / "feeds.yaml"), "feeds"])
    assert f"moved permanently to {feed_url}" in table.output


def test_a_page_that_advertises_nothing_is_tried_at_the_usual_paths(tmp_path: Path) -> None:
    with Site() as site:
        site.routes["/home"] = Route(body=_page(), headers=HTML)
        site.routes["/rss.xml"] = Route(body=RSS, headers=XML)
        refreshed = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/home"))
    [outcome] = refreshed.outcomes
    assert outcome.status == "ok" and outcome.moved_to == f"{site.base_url}/rss.xml"
    assert site.hits == ["/home", "/feed", "/feed/", "/rss", "/rss.xml"]


def test_a_blog_under_a_path_finds_its_feed_there(tmp_path: Path) -> None:
    with Site() as site:
        site.routes["/blog/"] = Route(body=_page(), headers=HTML)
        site.routes["/blog/rss"] = Route(body=RSS, headers=XML)
        site.routes["/rss"] = Route(body=RSS.replace(b"hw-", b"root-"), headers=XML)
        refreshed = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/blog/"))
    [outcome] = refreshed.outcomes
    assert outcome.status == "ok" and outcome.moved_to == f"{site.base_url}/blog/rss"
    assert site.hits == ["/blog/", "/blog/feed", "/blog/rss"]


def test_a_page_with_no_feed_anywhere_fails_saying_what_to_do(tmp_path: Path) -> None:
    with Site() as site:
        site.routes["/"] = Route(body=_page(_alternate("/missing.xml")), headers=HTML)
        refreshed = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/"))
    [outcome] = refreshed.outcomes
    assert outcome.status == "failed"
    assert "answers a web page, and no feed was found on it" in outcome.error
    assert "put the feed's own URL in feeds.yaml" in outcome.error
    assert len(site.hits) <= 1 + MAX_CANDIDATES
    assert refreshed.feeds[0]["permanent_url"] is None


def test_a_feed_read_before_that_answers_a_page_one_day_just_fails(tmp_path: Path) -> None:
    """An error page from a working feed must not move it anywhere."""
    with Site() as site:
        site.routes["/feed.xml"] = Route(body=RSS, headers=XML)
        assert (
            refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/feed.xml")).outcomes[0].status
            == "ok"
        )
        site.routes["/feed.xml"] = Route(body=_page(_alternate("/other.xml")), headers=HTML)
        site.routes["/other.xml"] = Route(body=RSS, headers=XML)
        site.hits.clear()
        refreshed = refresh_once(tmp_path, _feeds_yaml(f"{site.base_url}/feed.xml"))
    [outcome] = refreshed.outcomes
    assert outcome.status == "failed" and "not a feed" in outcome.error
    assert site.hits == ["/feed.xml"]
    assert refreshed.feeds[0]["permanent_url"] is None
