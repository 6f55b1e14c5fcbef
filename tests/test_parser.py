"""Tests for aggregator.parser.

Each feed under tests/data/feeds carries its own expectation in a sibling
``NAME.expected.json`` (feedparser's pattern, with JSON instead of ``eval``):
the URL and content type it is served with, then either ``error`` (a substring of the
ParseError message) or the feed title, ``warning`` (null, or a substring of it), the
entry count and the fields of the first entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.models import Entry, FetchResult, ParsedFeed
from aggregator.parse.parser import entry_key, parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
FIXTURES = sorted(path for path in FEEDS.iterdir() if not path.name.endswith(".expected.json"))
FEED_FIXTURES = [path for path in FIXTURES if path.suffix != ".html"]
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def fetched(
    content: bytes,
    *,
    url: str = "https://feeds.example/feed",
    content_type: str = "application/rss+xml; charset=utf-8",
) -> FetchResult:
    return FetchResult(
        url=url, final_url=url, status=200, content=content, headers={"content-type": content_type}
    )


def rss(items: str) -> bytes:
    """A minimal RSS 2.0 document around ``items``."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Test Wire</title><link>https://wire.example/</link>{items}</channel></rss>"
    ).encode()


def item(title: str, *, link: str = "", guid: str = "", pub_date: str = "") -> str:
    parts = [f"<title>{title}</title>"]
    parts += [f"<link>{link}</link>"] if link else []
    parts += [f'<guid isPermaLink="false">{guid}</guid>'] if guid else []
    parts += [f"<pubDate>{pub_date}</pubDate>"] if pub_date else []
    return f"<item>{''.join(parts)}</item>"


def entry_as_dict(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "guid": entry.guid,
        "title": entry.title,
        "link": entry.link,
        "canonical_url": entry.canonical_url,
        "author": entry.author,
        "tags": list(entry.tags),
        "summary_html": entry.summary_html,
        "content_html": entry.content_html,
        "published": entry.published.isoformat() if entry.published else None,
        "updated": entry.updated.isoformat() if entry.updated else None,
    }


def expectation_of(path: Path) -> dict[str, Any]:
    sibling = path.with_suffix(".expected.json")
    assert sibling.exists(), f"{path.name} has no {sibling.name}"
    expected: dict[str, Any] = json.loads(sibling.read_text(encoding="utf-8"))
    return expected


def parse_fixture(path: Path, expected: dict[str, Any]) -> ParsedFeed:
    result = fetched(path.read_bytes(), url=expected["url"], content_type=expected["content_type"])
    return parse_feed(result, now=NOW)


# -- the fixture corpus ---------------------------------------------------------------


def test_corpus_covers_every_format() -> None:
    names = {path.name for path in FIXTURES}
    assert {"rss2.xml", "atom.xml", "rdf.xml", "jsonfeed.json", "latin1.xml"} <= names
    assert {"cp1252-mislabelled.xml", "broken.xml", "notafeed.html"} <= names


@pytest.mark.parametrize("path", FIXTURES, ids=[path.name for path in FIXTURES])
def test_fixture_parses_as_expected(path: Path) -> None:
    expected = expectation_of(path)
    if "error" in expected:
        with pytest.raises(ParseError, match=expected["error"]) as caught:
            parse_fixture(path, expected)
        assert caught.value.url == expected["url"]
        return
    parsed = parse_fixture(path, expected)
    assert parsed.url == expected["url"]
    assert parsed.title == expected["title"]
    assert parsed.site_url == expected["site_url"]
    if expected["warning"] is None:
        assert parsed.warning is None
    else:
        assert parsed.warning is not None and expected["warning"] in parsed.warning
    assert len(parsed.entries) == expected["entries"]
    assert entry_as_dict(parsed.entries[0]) == expected["first"]


@pytest.mark.parametrize("path", FEED_FIXTURES, ids=[path.name for path in FEED_FIXTURES])
def test_keys_are_stable_across_parses(path: Path) -> None:
    expected = expectation_of(path)
    first = parse_fixture(path, expected)
    second = parse_fixture(path, expected)
    assert [entry.key for entry in first.entries] == [entry.key for entry in second.entries]
    assert first == second


# -- encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/rss+xml", "application/rss+xml; charset=iso-8859-1", "text/xml"],
)
def test_latin1_feed_keeps_its_accents(content_type: str) -> None:
    body = (FEEDS / "latin1.xml").read_bytes()
    assert "Hélène".encode("iso-8859-1") in body  # the fixture really is Latin-1 bytes
    parsed = parse_feed(fetched(body, content_type=content_type), now=NOW)
    assert parsed.entries[0].title == "La frégate « Hélène Dubreuil » achève ses essais à la mer"


@pytest.mark.parametrize(
    ("content_type", "warns"),
    [
        ("application/rss+xml; charset=iso-8859-1", False),
        # The server contradicts the body; feedparser falls back and says so.
        ("application/rss+xml; charset=utf-8", True),
    ],
)
def test_windows_1252_labelled_latin1_reads_as_windows_1252(content_type: str, warns: bool) -> None:
    body = (FEEDS / "cp1252-mislabelled.xml").read_bytes()
    assert "\u201c".encode("cp1252") in body  # a curly quote, which Latin-1 lacks
    parsed = parse_feed(fetched(body, content_type=content_type), now=NOW)
    title = parsed.entries[0].title
    assert title == "Minister calls the drone wall “a first line, not the last” – and asks for more"
    assert (parsed.warning is not None) is warns


# -- not feeds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"   \n", b"[1, 2, 3]", b'{"title": "a JSON document, not a feed"}', b"{not json"],
    ids=["empty", "whitespace", "json-list", "json-object", "bad-json"],
)
def test_body_without_a_feed_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(fetched(body), now=NOW)
    assert caught.value.url == "https://feeds.example/feed"


def test_valid_feed_without_items_is_not_an_error() -> None:
    parsed = parse_feed(fetched(rss("")), now=NOW)
    assert parsed.entries == ()
    assert parsed.title == "Test Wire"
    assert parsed.warning is None


# -- entry keys ------------------------------------------------------------------------


def test_entry_key_prefers_the_guid() -> None:
    assert entry_key(" wire-77 ", "https://wire.example/a", "Title") == "wire-77"


def test_entry_key_falls_back_to_the_canonical_link() -> None:
    key = entry_key(None, "https://Wire.example/a?utm_source=rss#top", "Title")
    assert key == "https://wire.example/a"


def test_entry_key_falls_back_to_a_hash_of_the_title() -> None:
    expected = "sha1:" + hashlib.sha1(b"Tank deal signed").hexdigest()
    assert entry_key(None, "", "Tank deal signed") == expected


def test_parsed_entry_without_guid_is_keyed_by_its_canonical_link() -> None:
    body = rss(item("Radar chain", link="https://Wire.example/radar?utm_medium=feed"))
    (entry,) = parse_feed(fetched(body), now=NOW).entries
    assert entry.guid is None
    assert entry.key == "https://wire.example/radar"


def test_item_without_link_or_guid_is_skipped() -> None:
    body = rss(item("Orphan headline") + item("Kept", link="https://wire.example/kept"))
    assert [entry.title for entry in parse_feed(fetched(body), now=NOW).entries] == ["Kept"]


def test_same_entry_listed_twice_gives_two_entries_with_one_key() -> None:
    # The parser reports what the feed says; the pipeline skips keys it already has.
    twice = item("Brigade exercise ends", link="https://wire.example/ex", guid="wire-9")
    parsed = parse_feed(fetched(rss(twice + twice)), now=NOW)
    assert [entry.key for entry in parsed.entries] == ["wire-9", "wire-9"]


# -- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pub_date", "published"),
    [
        ("Mon, 10 Mar 2025 09:00:00 +0000", datetime(2025, 3, 10, 9, tzinfo=UTC)),
        # Within the tolerance (clock skew): kept as written.
        ("Mon, 10 Mar 2025 12:45:00 +0000", datetime(2025, 3, 10, 12, 45, tzinfo=UTC)),
        # Far in the future: a publisher's mistake, clamped to now.
        ("Tue, 10 Mar 2026 09:00:00 +0000", NOW),
        ("Sat, 31 Dec 1994 23:00:00 +0000", None),
        ("Thu, 01 Jan 1970 00:00:00 +0000", None),
        ("next tuesday", None),
    ],
)
def test_rss_dates_are_clamped(pub_date: str, published: datetime | None) -> None:
    body = rss(item("Dated", link="https://wire.example/d", pub_date=pub_date))
    (entry,) = parse_feed(fetched(body), now=NOW).entries
    assert entry.published == published


@pytest.mark.parametrize(
    ("date_published", "published"),
    [
        ("2025-03-10T09:00:00+01:00", datetime(2025, 3, 10, 8, tzinfo=UTC)),
        ("2025-03-10T09:00:00", datetime(2025, 3, 10, 9, tzinfo=UTC)),  # naive means UTC
        ("2031-01-01T00:00:00Z", NOW),
        ("1990-06-01T00:00:00Z", None),
        ("yesterday", None),
    ],
)
def test_json_feed_dates_are_clamped(date_published: str, published: datetime | None) -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [{"id": "j1", "url": "https://j.example/1", "date_published": date_published}],
    }
    result = fetched(json.dumps(document).encode(), content_type="application/feed+json")
    (entry,) = parse_feed(result, now=NOW).entries
    assert entry.published == published


def test_now_defaults_to_the_clock() -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    body = rss(item("Scheduled", link="https://wire.example/s", pub_date=future))
    (entry,) = parse_feed(fetched(body)).entries
    assert entry.published is not None
    assert entry.published <= datetime.now(UTC)


# -- titles ----------------------------------------------------------------------------


def test_rss_title_markup_and_whitespace_are_cleaned() -> None:
    title = "<![CDATA[<b>Frigate</b>  trials\x01 &amp;\t\n more]]>"
    body = rss(item(title, link="https://wire.example/t"))
    (entry,) = parse_feed(fetched(body), now=NOW).entries
    assert entry.title == "Frigate trials & more"


def test_json_title_markup_and_control_chars_are_cleaned() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {"id": "j1", "url": "https://j.example/1", "title": "<i>Tank</i>\a deal &amp; more"},
            {"id": "j2", "url": "https://j.example/2", "title": "  "},
        ],
    }
    result = fetched(json.dumps(document).encode(), content_type="application/feed+json")
    titles = [entry.title for entry in parse_feed(result, now=NOW).entries]
    assert titles == ["Tank deal & more", "(untitled)"]


def test_json_content_text_is_escaped_not_taken_as_markup() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {"id": "j1", "url": "https://j.example/1", "content_text": "Rounds <b>& charges"},
        ],
    }
    result = fetched(json.dumps(document).encode(), content_type="application/feed+json")
    (entry,) = parse_feed(result, now=NOW).entries
    assert entry.content_html == "<p>Rounds &lt;b&gt;&amp; charges</p>"
