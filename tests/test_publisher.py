"""Publisher: golden files per format, plus round trips through real parsers.

The golden files in tests/data/golden are rewritten by ``pytest --update-golden``;
review their diff before committing.
"""

from __future__ import annotations

import html
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest

from aggregator.models import FeedMeta, PublishedStory, StoryFilter, StorySource
from aggregator.publish.feeds import (
    CONTENT_TYPES,
    FEED_PATHS,
    FORMATS,
    item_id,
    render_feed,
    story_html,
)
from aggregator.publish.page import PageView, render_page
from aggregator.publish.story_page import render_story_page

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
GOLDEN_FILES = {"rss": "merged.rss", "atom": "merged.atom", "json": "merged.json"}

META = FeedMeta(
    title="Defence Digest",
    public_url="https://news.example.org",
    updated=datetime(2025, 6, 3, 6, 0, tzinfo=UTC),
)


def _dt(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 6, day, hour, minute, tzinfo=UTC)


FRIGATE = PublishedStory(
    id="3f2a9c41d07e",
    title='First "Miecznik" frigate floated out at Gdynia & heads for <sea trials>',
    link="https://baltic-naval.example.com/2025/06/miecznik-float-out?id=42&lang=en",
    content_html=(
        "<p>The first of three <strong>Miecznik</strong>-class frigates left the dry dock"
        " at Gdynia on Monday, watched by crews from Łódź and Gdańsk.</p>"
        "<p>The programme is now costed at <em>€2.4bn</em> &amp; remains on schedule.</p>"
        '<figure><img src="https://baltic-naval.example.com/img/miecznik.jpg" alt="Frigate">'
        "<figcaption>The hull leaves the dock.</figcaption></figure>"
    ),
    content_text=(
        "The first of three Miecznik-class frigates left the dry dock at Gdynia on Monday,"
        " watched by crews from Łódź and Gdańsk.\n\n"
        "The programme is now costed at €2.4bn & remains on schedule."
    ),
    summary="The first Miecznik-class frigate left dry dock at Gdynia; sea trials follow.",
    published=_dt(2, 14, 30),
    updated=_dt(2, 18, 5),
    tags=("naval", "Poland", "frigates & corvettes"),
    sources=(
        StorySource(
            feed_name="Baltic Naval Review",
            title='First "Miecznik" frigate floated out at Gdynia',
            url="https://baltic-naval.example.com/2025/06/miecznik-float-out?id=42&lang=en",
            published=_dt(2, 14, 30),
            relation="lead",
            feed_url="https://baltic-naval.example.com/feed/",
            site_url="https://baltic-naval.example.com/",
        ),
        StorySource(
            feed_name="Defence Wire",
            title="Miecznik frigate floated out (syndicated)",
            url="https://defence-wire.example.net/syndicated/miecznik-float-out",
            published=_dt(2, 15, 10),
            relation="duplicate",
            score=0.97,
        ),
        StorySource(
            feed_name="Łódź Defence Daily",
            title="What the Miecznik launch means for the Baltic <analysis>",
            url="https://lodz-defence.example.pl/analiza/miecznik",
            published=None,
            relation="related",
            score=0.61,
        ),
    ),
    author="Anna Nowak",
    image="https://baltic-naval.example.com/img/miecznik.jpg",
    last_activity=_dt(2, 16, 40),  # the related report, dated by when it was fetched
)

AIR_DEFENCE = PublishedStory(
    id="9b07e2d5aa10",
    title="Short-range air-defence system downs drone swarm in Łódź trial",
    link="https://airpower.example.com/news/shorad-trial",
    content_html=(
        "<p>A short-range air-defence battery intercepted 11 of 12 target drones.</p>"
        "<ul><li>Range: 8 km</li><li>Cost per shot: under €30,000</li></ul>"
    ),
    content_text=(
        "A short-range air-defence battery intercepted 11 of 12 target drones.\n\n"
        "Range: 8 km. Cost per shot: under €30,000."
    ),
    summary="Battery intercepted 11 of 12 target drones during a live-fire trial.",
    published=_dt(1, 9, 0),
    updated=_dt(1, 9, 0),
    tags=("air defence", "drones"),
    sources=(
        StorySource(
            feed_name="Air Power Today",
            title="SHORAD battery downs drone swarm",
            url="https://airpower.example.com/news/shorad-trial",
            published=_dt(1, 9, 0),
            relation="lead",
            feed_url="https://airpower.example.com/rss.xml",
        ),
        StorySource(
            feed_name="Europe's Defence Monitor",
            title="Drone-swarm trial: 'a clear result'",
            url="https://edm.example.eu/2025/06/01/drone-swarm-trial",
            published=_dt(1, 11, 45),
            relation="related",
            score=0.74,
        ),
    ),
    author="Zofia Kowalczyk-O'Brien",
    last_activity=_dt(1, 11, 45),
)

CONTRACT = PublishedStory(
    id="c41d8e0f5b22",
    title='Army awards €1.2bn 155mm shell contract; deliveries <2027 "on schedule"',
    link="https://procurement.example.com/awards/155mm-shells",
    content_html="<p>The five-year framework covers 155mm rounds &amp; charges.</p>",
    content_text="The five-year framework covers 155mm rounds & charges.",
    summary="A five-year, €1.2bn framework for 155mm artillery rounds.",
    published=_dt(1, 7, 15),
    updated=_dt(1, 7, 15),
    tags=("procurement",),
    sources=(
        StorySource(
            feed_name="Procurement Watch",
            title="€1.2bn 155mm framework awarded",
            url="https://procurement.example.com/awards/155mm-shells",
            published=_dt(1, 7, 15),
            relation="lead",
            feed_url="https://procurement.example.com/feed.atom",
            site_url="https://procurement.example.com/",
        ),
    ),
)

STORIES = (FRIGATE, AIR_DEFENCE, CONTRACT)


def _all_urls(story: PublishedStory) -> list[str]:
    return [source.url for source in story.sources]


# --- golden files -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_matches_golden_file(fmt: str, update_golden: bool) -> None:
    rendered = render_feed(STORIES, META, fmt)
    path = GOLDEN_DIR / GOLDEN_FILES[fmt]
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered)
    assert path.exists(), f"{path} is missing; run `pytest --update-golden` to create it"
    expected = path.read_bytes().decode("utf-8")
    assert rendered.decode("utf-8") == expected, (
        f"{fmt} output differs from {path}; if the change is intended, run "
        "`pytest tests/test_publisher.py --update-golden` and review the diff"
    )


PAGE_VIEW = PageView(
    title=META.title,
    stories=STORIES,
    tags=("air defence", "drones", "naval"),
    story_filter=StoryFilter(),
    query_string="",
    next_query="after=MjAyNS0wNi0wMXw5YjA3",
    slices=(("Naval only", "/naval.xml"),),
)


def test_page_matches_golden_file(update_golden: bool) -> None:
    # The HTML page at / (issue 6), golden like the feeds: `make golden` rewrites it.
    rendered = render_page(PAGE_VIEW)
    path = GOLDEN_DIR / "page.html"
    if update_golden:
        path.write_bytes(rendered)
    assert path.exists(), f"{path} is missing; run `pytest --update-golden` to create it"
    assert rendered.decode("utf-8") == path.read_text(encoding="utf-8"), (
        f"the page differs from {path}; if the change is intended, run "
        "`pytest tests/test_publisher.py --update-golden` and review the diff"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_is_deterministic(fmt: str) -> None:
    assert render_feed(STORIES, META, fmt) == render_feed(list(STORIES), META, fmt)


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown feed format 'html'"):
        render_feed(STORIES, META, "html")


def test_tables_cover_every_format() -> None:
    assert set(CONTENT_TYPES) == set(FEED_PATHS) == set(FORMATS)


# --- RSS 2.0 ----------------------------------------------------------------------


def _parse(data: bytes) -> Any:
    parsed = feedparser.parse(io.BytesIO(data))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def test_rss_round_trip() -> None:
    parsed = _parse(render_feed(STORIES, META, "rss"))
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Defence Digest"
    assert parsed.feed.link == "https://news.example.org/"
    assert [e.id for e in parsed.entries] == [item_id(s) for s in STORIES]
    for entry, story in zip(parsed.entries, STORIES, strict=True):
        assert entry.guidislink is False
        assert entry.title == story.title
        assert entry.link == story.link
        assert entry.published_parsed[:6] == story.published.timetuple()[:6]
        assert [t.term for t in entry.tags] == list(story.tags)
        body = html.unescape(entry.content[0].value)
        assert all(url in body for url in _all_urls(story))
        assert "<p>Source: " in body


def test_rss_guid_is_not_a_permalink_and_creator_is_the_lead_outlet() -> None:
    root = ET.fromstring(render_feed(STORIES, META, "rss"))
    items = root.findall("channel/item")
    guids = [i.find("guid") for i in items]
    assert [(g.get("isPermaLink"), g.text) for g in guids if g is not None] == [
        ("false", item_id(s)) for s in STORIES
    ]
    creator = "{http://purl.org/dc/elements/1.1/}creator"
    # Issue 17: readers list outlets, not bylines.
    outlets = ["Baltic Naval Review", "Air Power Today", "Procurement Watch"]
    assert [i.findtext(creator) for i in items] == outlets
    self_link = root.find("channel/{http://www.w3.org/2005/Atom}link")
    assert self_link is not None
    assert self_link.get("href") == "https://news.example.org/feed.xml"
    assert root.findtext("channel/lastBuildDate") == "Tue, 03 Jun 2025 06:00:00 GMT"


def test_rss_escapes_markup_in_text() -> None:
    root = ET.fromstring(render_feed(STORIES, META, "rss"))
    titles = [i.findtext("title") for i in root.findall("channel/item")]
    assert titles == [s.title for s in STORIES]


# --- Atom 1.0 ---------------------------------------------------------------------


def test_atom_round_trip() -> None:
    parsed = _parse(render_feed(STORIES, META, "atom"))
    assert parsed.version == "atom10"
    assert parsed.feed.id == "https://news.example.org/"
    assert parsed.feed.updated == "2025-06-03T06:00:00Z"
    assert [e.id for e in parsed.entries] == [item_id(s) for s in STORIES]
    for entry, story in zip(parsed.entries, STORIES, strict=True):
        assert entry.title == story.title
        assert entry.link == story.link
        assert entry.summary == story.summary
        related = [link.href for link in entry.links if link.rel == "related"]
        assert related == _all_urls(story)
        assert [t.term for t in entry.tags] == list(story.tags)
        body = html.unescape(entry.content[0].value)
        assert all(url in body for url in _all_urls(story))


def test_atom_entry_author_is_the_lead_outlet() -> None:
    # Issue 17: an 18-outlet feed listed bylines; readers show the outlet instead.
    parsed = _parse(render_feed(STORIES, META, "atom"))
    assert [e.author for e in parsed.entries] == [
        "Baltic Naval Review",
        "Air Power Today",
        "Procurement Watch",
    ]


def test_atom_related_link_titles_name_feed_and_article() -> None:
    parsed = _parse(render_feed(STORIES, META, "atom"))
    titles = [link.title for link in parsed.entries[0].links if link.rel == "related"]
    assert (
        titles[2] == "Łódź Defence Daily: What the Miecznik launch means for the Baltic <analysis>"
    )


# --- JSON Feed 1.1 ----------------------------------------------------------------

_SOURCE_SCHEMA = {
    "type": "object",
    "required": ["url", "title", "feed", "date_published", "relation", "score"],
    "properties": {
        "url": {"type": "string"},
        "title": {"type": "string"},
        "feed": {"type": "string"},
        "date_published": {"type": ["string", "null"]},
        "relation": {"enum": ["lead", "duplicate", "related"]},
        "score": {"type": ["number", "null"]},
    },
}
_ITEM_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "url",
        "title",
        "content_html",
        "content_text",
        "summary",
        "date_published",
        "date_modified",
        "tags",
        "_aggregator",
    ],
    "properties": {
        "id": {"type": "string"},
        "date_published": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "date_modified": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "authors": {
            "type": "array",
            "items": {"type": "object", "required": ["name"]},
            "minItems": 1,
        },
        "image": {"type": "string"},
        "_aggregator": {
            "type": "object",
            "required": ["sources"],
            "properties": {"sources": {"type": "array", "items": _SOURCE_SCHEMA}},
        },
    },
}
JSON_FEED_SCHEMA = {
    "type": "object",
    "required": ["version", "title", "home_page_url", "feed_url", "description", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "items": {"type": "array", "items": _ITEM_SCHEMA},
    },
}


def test_json_feed_matches_schema_and_stories() -> None:
    data = render_feed(STORIES, META, "json")
    assert data.endswith(b"}\n")
    doc = json.loads(data.decode("utf-8"))
    jsonschema.validate(doc, JSON_FEED_SCHEMA)
    assert doc["feed_url"] == "https://news.example.org/feed.json"
    assert [i["id"] for i in doc["items"]] == [item_id(s) for s in STORIES]
    for item, story in zip(doc["items"], STORIES, strict=True):
        assert item["url"] == story.link
        assert item["title"] == story.title
        assert item["tags"] == list(story.tags)
        assert [s["url"] for s in item["_aggregator"]["sources"]] == _all_urls(story)
        assert item["_aggregator"]["sources"][0]["relation"] == "lead"
    assert doc["items"][0]["image"] == FRIGATE.image
    assert "image" not in doc["items"][1]
    assert doc["items"][0]["_aggregator"]["sources"][2]["date_published"] is None


def test_json_feed_keeps_non_ascii_unescaped() -> None:
    data = render_feed(STORIES, META, "json")
    assert "Łódź".encode() in data
    assert "€1.2bn".encode() in data
    assert b"\\u" not in data


def test_json_feed_publishes_nan_score_as_null() -> None:
    lead = replace(CONTRACT.sources[0], score=float("nan"))
    story = replace(CONTRACT, sources=(lead,))
    doc = json.loads(render_feed([story], META, "json"))
    assert doc["items"][0]["_aggregator"]["sources"][0]["score"] is None


# --- edge cases shared by every format --------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_empty_feed_is_valid(fmt: str) -> None:
    parsed = _parse(render_feed([], replace(META, updated=None), fmt))
    assert parsed.entries == []


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_characters_xml_cannot_carry_are_dropped(fmt: str) -> None:
    story = replace(CONTRACT, title="Bad\x00 control\x1b chars\ufffe", summary="s\x01")
    parsed = _parse(render_feed([story], META, fmt))
    assert parsed.entries[0].title == "Bad control chars"


@pytest.mark.parametrize("fmt", FORMATS)
def test_naive_datetimes_are_taken_as_utc(fmt: str) -> None:
    naive = replace(
        CONTRACT, published=datetime(2025, 6, 1, 7, 15), updated=datetime(2025, 6, 1, 7, 15)
    )
    assert render_feed([naive], META, fmt) == render_feed([CONTRACT], META, fmt)


def test_story_html_credits_the_lead_then_every_other_outlet() -> None:
    # Issues 4 and 6: full text of the lead, then "Also reported by" (independent
    # reports) and "Republished by" (copies), every other outlet linked.
    body = story_html(FRIGATE)
    assert body.startswith(FRIGATE.content_html)
    assert body.endswith(
        "<hr><p>Source: "
        '<a href="https://baltic-naval.example.com/2025/06/miecznik-float-out?id=42&amp;lang=en">'
        'Baltic Naval Review</a>: First "Miecznik" frigate floated out at Gdynia'
        " (2025-06-02), by Anna Nowak</p>"
        "<h3>Also reported by</h3><ul>"
        '<li><a href="https://lodz-defence.example.pl/analiza/miecznik">Łódź Defence Daily</a>:'
        " What the Miecznik launch means for the Baltic &lt;analysis&gt;</li></ul>"
        "<h3>Republished by</h3><ul>"
        '<li><a href="https://defence-wire.example.net/syndicated/miecznik-float-out">'
        "Defence Wire</a>: Miecznik frigate floated out (syndicated) (2025-06-02)</li></ul>"
    )


def test_story_html_falls_back_to_escaped_text() -> None:
    story = replace(CONTRACT, content_html="", content_text="Rounds & charges.\n\nSecond <p>.")
    assert story_html(story).startswith("<p>Rounds &amp; charges.</p><p>Second &lt;p&gt;.</p>")


def test_story_html_does_not_link_non_web_source_urls() -> None:
    bad = replace(CONTRACT.sources[0], url="javascript:alert(1)")
    body = story_html(replace(CONTRACT, sources=(bad,)))
    assert "javascript:" not in body
    assert "<p>Source: Procurement Watch: " in body
    assert "Also reported by" not in body  # a single outlet has nobody else to list


# --- issue 17: readers show outlets, and the stories' real times -------------------


def test_rss_items_name_the_lead_outlet_as_their_source() -> None:
    root = ET.fromstring(render_feed(STORIES, META, "rss"))
    sources = [item.find("source") for item in root.findall("channel/item")]
    assert [(s.get("url"), s.text) for s in sources if s is not None] == [
        ("https://baltic-naval.example.com/feed/", "Baltic Naval Review"),
        ("https://airpower.example.com/rss.xml", "Air Power Today"),
        ("https://procurement.example.com/feed.atom", "Procurement Watch"),
    ]
    parsed = _parse(render_feed(STORIES, META, "rss"))
    assert parsed.entries[0].source == {
        "href": "https://baltic-naval.example.com/feed/",
        "title": "Baltic Naval Review",
    }


def test_atom_entries_carry_the_lead_outlets_feed_as_source() -> None:
    parsed = _parse(render_feed(STORIES, META, "atom"))
    source = parsed.entries[0].source
    assert source.title == "Baltic Naval Review"
    assert source.id == "https://baltic-naval.example.com/feed/"
    assert {link.rel: link.href for link in source.links} == {
        "self": "https://baltic-naval.example.com/feed/",
        "alternate": "https://baltic-naval.example.com/",
    }
    assert "alternate" not in {link.rel for link in parsed.entries[1].source.links}


def test_item_update_dates_are_the_stories_real_times_not_ingest_times() -> None:
    # Issue 17: Atom <updated> was the ingest time on every entry.
    ingested = replace(FRIGATE, updated=datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    atom = _parse(render_feed([ingested, CONTRACT], META, "atom"))
    assert [e.updated for e in atom.entries] == ["2025-06-02T16:40:00Z", "2025-06-01T07:15:00Z"]
    doc = json.loads(render_feed([ingested, CONTRACT], META, "json"))
    assert [i["date_modified"] for i in doc["items"]] == [
        "2025-06-02T16:40:00Z",
        "2025-06-01T07:15:00Z",
    ]
    early = replace(CONTRACT, last_activity=_dt(1, 6, 0))  # never before published
    assert _parse(render_feed([early], META, "atom")).entries[0].updated == "2025-06-01T07:15:00Z"


def test_json_feed_author_is_the_outlet_with_its_site() -> None:
    doc = json.loads(render_feed(STORIES, META, "json"))
    assert [item["authors"] for item in doc["items"]] == [
        [{"name": "Baltic Naval Review", "url": "https://baltic-naval.example.com/"}],
        [{"name": "Air Power Today"}],
        [{"name": "Procurement Watch", "url": "https://procurement.example.com/"}],
    ]


@pytest.mark.parametrize(
    ("author", "credited"),
    [
        ("newsroom@wire.example (Desk Editor)", ", by Desk Editor</p>"),
        ("newsroom@wire.example", "(2025-06-01)</p>"),
        ("  ", "(2025-06-01)</p>"),
        ("Piotr <b>Nowak</b>", ", by Piotr &lt;b&gt;Nowak&lt;/b&gt;</p>"),
    ],
)
def test_byline_is_credited_in_the_body_as_a_name(author: str, credited: str) -> None:
    body = story_html(replace(CONTRACT, author=author))
    assert body.endswith(credited)
    assert "@" not in body


def test_story_page_matches_golden_file(update_golden: bool) -> None:
    # The reading view of a story (issue 17), golden like the page.
    rendered = render_story_page(FRIGATE, META.title)
    path = GOLDEN_DIR / "story.html"
    if update_golden:
        path.write_bytes(rendered)
    assert path.exists(), f"{path} is missing; run `pytest --update-golden` to create it"
    assert rendered.decode("utf-8") == path.read_text(encoding="utf-8"), (
        f"the story view differs from {path}; if the change is intended, run "
        "`pytest tests/test_publisher.py --update-golden` and review the diff"
    )
