"""One poisoned item never kills its feed (issue 19, item 2).

feedparser raises on a reference to a code point that cannot exist (a surrogate, or
past U+10FFFF); a JSON Feed can carry a lone surrogate that nh3 and SQLite refuse.
Such items are repaired (U+FFFD) or skipped, the feed's URL is logged, and the rest
of the feed is published.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from aggregator.models import FetchResult
from aggregator.parse.parser import parse_feed
from aggregator.sanitize import clean_title, repair_text, sanitize_html
from tests.loopback import Route, Site, refresh_once

FEED_URL = "https://outlet.example/feed.xml"
RSS = {"Content-Type": "application/rss+xml"}
JSON = {"Content-Type": "application/feed+json"}
BAD_REFERENCES = [
    "&#xD800;",  # a surrogate
    "&#xdfff;",
    "&#55296;",  # the same, in decimal
    "&#x110000;",  # past the last code point
    "&#1114112;",
    "&#99999999999999999999;",  # past even a C int
    "&#x" + "f" * 40 + ";",
    "&#" + "9" * 5000 + ";",  # past Python's int() digit limit
]


def _rss(poison: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Outlet</title>'
        "<item><title>Frigate sails</title><link>https://outlet.example/1</link>"
        "<description>The frigate left port.</description></item>"
        f"<item><title>Radar {poison} ordered</title><link>https://outlet.example/2</link>"
        f"<description>A radar {poison} was ordered.</description></item>"
        "<item><title>Tanker delivered</title><link>https://outlet.example/3</link>"
        "<description>The tanker arrived. &#x2014; &#8217; &#x0041;</description></item>"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize("poison", BAD_REFERENCES, ids=lambda ref: ref[:24])
def test_a_reference_to_an_impossible_character_is_repaired(
    poison: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aggregator.parse.parser"):
        parsed = parse_feed(FetchResult(FEED_URL, FEED_URL, 200, _rss(poison)))
    assert [entry.title for entry in parsed.entries] == [
        "Frigate sails",
        "Radar \ufffd ordered",
        "Tanker delivered",
    ]
    assert "\ufffd" in parsed.entries[1].summary_html
    assert "\u2014 \u2019 A" in parsed.entries[2].summary_html  # good references untouched
    assert FEED_URL in caplog.text and "invalid characters" in caplog.text


def _json_feed(items: list[object]) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "Outlet", "items": items}
    # ensure_ascii keeps "\ud800" as the six characters a hostile feed would send.
    return json.dumps(document, ensure_ascii=True).encode()


def test_a_lone_surrogate_in_a_json_feed_is_replaced_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = _json_feed(
        [
            {"id": "1", "url": "https://outlet.example/1", "title": "Bad \ud800"},
            {
                "id": "2\udc00",
                "url": "https://outlet.example/2",
                "title": "Fine",
                "content_html": "<p>Hull \udbff laid</p>",
                "authors": [{"name": "Desk \ud800"}],
                "tags": ["naval\udfff"],
            },
        ]
    )
    assert b"\\ud800" in body
    with caplog.at_level(logging.WARNING, logger="aggregator.parse.parser"):
        entries = parse_feed(FetchResult(FEED_URL, FEED_URL, 200, body)).entries
    assert [entry.title for entry in entries] == ["Bad \ufffd", "Fine"]
    second = entries[1]
    assert (second.guid, second.author, second.tags) == ("2\ufffd", "Desk \ufffd", ("naval\ufffd",))
    assert second.content_html == "<p>Hull \ufffd laid</p>"
    for entry in entries:  # every field can now be encoded (SQLite, every output)
        for value in (entry.key, entry.title, entry.content_html, entry.summary_html):
            value.encode("utf-8")
    assert caplog.text.count("replaced invalid characters") == 2


def test_an_unreadable_json_item_is_skipped_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = _json_feed(
        [
            {"id": "1", "url": "https://outlet.example/1", "title": "Kept"},
            {"id": "2", "url": "https://outlet.example/2", "title": "Odd tags", "tags": 7},
            {"id": "3", "url": "https://outlet.example/3", "title": "Also kept"},
        ]
    )
    with caplog.at_level(logging.WARNING, logger="aggregator.parse.parser"):
        entries = parse_feed(FetchResult(FEED_URL, FEED_URL, 200, body)).entries
    assert [entry.title for entry in entries] == ["Kept", "Also kept"]
    assert "skipped item 2" in caplog.text and FEED_URL in caplog.text


def test_the_sanitisers_take_lone_surrogates() -> None:
    assert repair_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert repair_text("\U0001f680") == "\U0001f680"  # a real pair is one character
    assert clean_title("Bad \ud800") == "Bad \ufffd"
    assert sanitize_html("<p>Bad \ud800</p>", "https://outlet.example/") == "<p>Bad \ufffd</p>"


def test_end_to_end_one_poisoned_item_does_not_cost_the_feed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    json_body = _json_feed(
        [
            {"id": "j1", "title": "Bad \ud800", "content_text": "Drone \ud800 trial flown."},
            {
                "id": "j2",
                "title": "Patrol boat commissioned",
                "content_text": "Four hulls entered service.",
            },
        ]
    )
    with Site() as site:
        site.routes["/rss.xml"] = Route(body=_rss("&#xD800;&#x110000;"), headers=RSS)
        site.routes["/feed.json"] = Route(body=json_body, headers=JSON)
        feeds = (
            f"feeds:\n  - name: Poisoned RSS\n    url: {site.base_url}/rss.xml\n"
            f"    extract: false\n  - name: Poisoned JSON\n    url: {site.base_url}/feed.json\n"
            "    extract: false\n"
        )
        with caplog.at_level(logging.WARNING):
            refreshed = refresh_once(tmp_path, feeds)
    assert [outcome.status for outcome in refreshed.outcomes] == ["ok", "ok"]
    assert len(refreshed.articles) == 5
    titles = {item["title"] for item in json.loads(refreshed.rendered["json"])["items"]}
    # (no word in common with the radar item: two one-line items sharing "ordered" are
    # near enough, in a five-article database, for the refinement to group them)
    assert {"Frigate sails", "Tanker delivered", "Patrol boat commissioned"} <= titles
    assert {"Radar \ufffd\ufffd ordered", "Bad \ufffd"} <= titles
    assert f"{site.base_url}/rss.xml: replaced 4 references" in caplog.text
