"""Only http(s) links are ever published (issue 19, item 1).

An item whose link is ``javascript:``, ``data:``, ``file:``... (in any case, with a
leading space or a tab inside the scheme) keeps it as its identity but loses it as a
link at parse time; storage gives such a story its feed's site link instead, and the
renderers check every link again before writing it.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pytest

from aggregator.models import FeedMeta, FetchResult, PublishedStory, StoryFilter, StorySource
from aggregator.parse.parser import parse_feed
from aggregator.publish.feeds import FORMATS, render_feed
from aggregator.publish.page import PageView, render_page
from aggregator.urls import web_url
from tests.loopback import Route, Site, refresh_once

BAD_LINKS = {
    "javascript": "javascript:alert(1)",
    "mixed case": "JaVaScRiPt:alert(1)",
    "leading space": " javascript:alert(1)",
    "tab in the scheme": "java\tscript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript": "vbscript:msgbox(1)",
    "file": "file:///etc/passwd",
}
# Each bad link's scheme as a browser reads it, to look for in the output.
DANGEROUS = re.compile(r"javascript:|vbscript:|data:text|file:/", re.IGNORECASE)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _published(text: str) -> str:
    """What a reader would act on: tabs and newlines inside URLs mean nothing to it."""
    return re.sub(r"[\t\n\r]|&#9;|&#x9;", "", text)


@pytest.mark.parametrize("name", sorted(BAD_LINKS))
def test_web_url_refuses_every_dangerous_scheme(name: str) -> None:
    assert web_url(BAD_LINKS[name]) is None
    assert web_url(BAD_LINKS[name], "https://news.example/feed") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (" https://news.example/a ", "https://news.example/a"),
        ("HTTPS://news.example/a", "HTTPS://news.example/a"),
        ("http://news.example/a\tb", "http://news.example/ab"),
        ("/a", None),  # relative with nothing to resolve against
        ("http:///a", None),  # no host
        ("http://news.example:x/", None),  # not a port
        ("http://news.example/a\x00b", None),  # a control inside
    ],
)
def test_web_url_keeps_http_links_as_a_browser_reads_them(url: str, expected: str | None) -> None:
    assert web_url(url) == expected


def test_web_url_resolves_relative_links_against_the_feed() -> None:
    assert web_url("/a", "https://news.example/feed") == "https://news.example/a"
    assert web_url("//cdn.example/a", "https://news.example/feed") == "https://cdn.example/a"


def _rss_item(link: str, guid: str | None) -> bytes:
    guid_xml = f"<guid>{guid}</guid>" if guid else ""
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Outlet</title>'
        "<link>https://outlet.example/</link>"
        f"<item><title>Corvette launched</title><link>{escape(link)}</link>{guid_xml}"
        "<description>The yard floated out the hull.</description></item>"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize("name", sorted(BAD_LINKS))
@pytest.mark.parametrize("guid", ["corvette-1", None])
def test_an_rss_item_with_a_bad_link_is_kept_without_it(name: str, guid: str | None) -> None:
    feed_url = "https://outlet.example/feed"
    parsed = parse_feed(FetchResult(feed_url, feed_url, 200, _rss_item(BAD_LINKS[name], guid)))
    [entry] = parsed.entries
    assert entry.link == "" and entry.canonical_url == ""
    # Still one stable identity: the guid, else the link's text (as feedparser reads it).
    assert entry.key == entry.guid if guid else not entry.key.startswith("sha1:")
    again = parse_feed(FetchResult(feed_url, feed_url, 200, _rss_item(BAD_LINKS[name], guid)))
    assert again.entries[0].key == entry.key


@pytest.mark.parametrize("name", sorted(BAD_LINKS))
def test_a_json_feed_item_with_a_bad_url_is_kept_without_it(name: str) -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Outlet",
        "items": [
            {"id": "1", "url": BAD_LINKS[name], "title": "Radar ordered", "content_text": "x"},
            {"id": "2", "external_url": BAD_LINKS[name], "title": "Tanker", "content_text": "y"},
            {"id": "3", "url": "/news/3", "title": "Relative", "content_text": "z"},
        ],
    }
    feed_url = "https://outlet.example/feed.json"
    result = FetchResult(feed_url, feed_url, 200, json.dumps(document).encode())
    entries = parse_feed(result).entries
    assert [entry.link for entry in entries] == ["", "", "https://outlet.example/news/3"]


def _story(link: str, source_url: str) -> PublishedStory:
    source = StorySource("Outlet", "Radar ordered", source_url, NOW, "lead")
    return PublishedStory(
        id="s1",
        title="Radar ordered",
        link=link,
        content_html="<p>The navy ordered a radar.</p>",
        content_text="The navy ordered a radar.",
        summary="The navy ordered a radar.",
        published=NOW,
        updated=NOW,
        tags=(),
        sources=(source, replace(source, feed_name="Other", relation="related")),
        image=link,
    )


@pytest.mark.parametrize("name", sorted(BAD_LINKS))
def test_renderers_never_write_a_bad_link_even_if_storage_holds_one(name: str) -> None:
    """The second line of defence: a story read from an older database."""
    story = _story(BAD_LINKS[name], BAD_LINKS[name])
    meta = FeedMeta(title="Merged", public_url="http://127.0.0.1:8080")
    for fmt in FORMATS:
        body = _published(render_feed([story], meta, fmt).decode())
        assert not DANGEROUS.search(body), (fmt, body)
    item = json.loads(render_feed([story], meta, "json"))["items"][0]
    assert "url" not in item and "image" not in item
    view = PageView("Merged", (story,), (), StoryFilter(), "", None)
    assert not DANGEROUS.search(_published(render_page(view).decode()))


def test_a_good_link_is_still_published_in_every_format() -> None:
    story = _story("https://outlet.example/radar", "https://outlet.example/radar")
    meta = FeedMeta(title="Merged", public_url="http://127.0.0.1:8080")
    assert "<link>https://outlet.example/radar</link>" in render_feed([story], meta, "rss").decode()
    assert 'href="https://outlet.example/radar"' in render_feed([story], meta, "atom").decode()
    assert json.loads(render_feed([story], meta, "json"))["items"][0]["url"] == story.link


# Invented, distinct reports, so no two items group into one story.
REPORTS = [
    ("Shipyard floats out first corvette", "The Baltic yard floated out the corvette hull."),
    ("Army orders tracked ambulances", "Forty tracked ambulances were ordered for brigades."),
    ("Air force retires trainer jets", "The last trainer jets flew their final sortie."),
    ("Coast guard tests drone catapult", "A catapult launched drones from a patrol cutter."),
    ("Depot refurbishes howitzers", "Technicians refurbished towed howitzers at the depot."),
    ("Navy commissions survey vessel", "The survey vessel will chart northern sea lanes."),
    ("Ministry buys winter boots", "Soldiers receive insulated boots before the winter."),
]


def _hostile_links_feed(site_link: str) -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>{escape(link)}</link>"
        + (f"<guid>report-{index}</guid>" if index % 2 else "")
        + f"<description>{body} {name} case.</description></item>"
        for index, ((name, link), (title, body)) in enumerate(
            zip(sorted(BAD_LINKS.items()), REPORTS, strict=True)
        )
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile outlet</title>'
        f"<link>{site_link}</link>{items}</channel></rss>"
    ).encode()


def test_end_to_end_bad_links_are_never_published_and_the_site_link_stands_in(
    tmp_path: Path,
) -> None:
    with Site() as site:
        site_link = f"{site.base_url}/home"
        site.routes["/feed.xml"] = Route(body=_hostile_links_feed(site_link))
        refreshed = refresh_once(
            tmp_path, f"feeds:\n  - name: Hostile\n    url: {site.base_url}/feed.xml\n"
        )
    assert [outcome.status for outcome in refreshed.outcomes] == ["ok"]
    assert len(refreshed.articles) == len(BAD_LINKS)  # every item kept, none fetched
    assert site.hits == ["/feed.xml"]
    for fmt, body in refreshed.rendered.items():
        assert not DANGEROUS.search(_published(body)), (fmt, body)
    items = json.loads(refreshed.rendered["json"])["items"]
    assert len(items) == len(BAD_LINKS)
    assert {item["url"] for item in items} == {site_link}  # the feed's site link instead
    assert all(source["url"] is None for item in items for source in item["_aggregator"]["sources"])
