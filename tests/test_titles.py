"""Titles are short plain text (issue 19, items 10 and 11).

A title is capped at MAX_TITLE_CHARS, cut at a word with an ellipsis, whatever size
the feed sent; markup in it, even escaped once (``&lt;img src=x onerror=…&gt;``), is
stripped, so no RSS ``<title>`` carries it to a reader that shows titles as HTML.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.models import Assignment, NewArticle
from aggregator.sanitize import MAX_TITLE_CHARS, cap_text, clean_title
from aggregator.storage import Storage
from tests.loopback import Route, Site, refresh_once

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

ESCAPED_MARKUP = {
    "escaped image with a handler": ("&lt;img src=x onerror=alert(1)&gt;Frigate", "Frigate"),
    "escaped script": ("&lt;script&gt;alert(1)&lt;/script&gt;Tank", "Tank"),
    "escaped bold": ("&lt;b&gt;Radar&lt;/b&gt; ordered", "Radar ordered"),
    "double markup": ("<b>&lt;i&gt;Drone&lt;/i&gt;</b> flown", "Drone flown"),
    "escaped svg": ("Jet &lt;svg onload=alert(1)&gt; lands", "Jet lands"),
    "unknown element with a handler": ("&lt;F-35 onmouseover=alert(1)&gt;Jet", "Jet"),
    "escaped comment": ("&lt;!-- hidden --&gt;Tank", "Tank"),
    "angle brackets around a name stay": ("&lt;F-35&gt; arrives", "<F-35> arrives"),
}


@pytest.mark.parametrize("name", sorted(ESCAPED_MARKUP))
def test_markup_escaped_once_is_stripped_from_titles(name: str) -> None:
    raw, expected = ESCAPED_MARKUP[name]
    assert clean_title(raw) == expected


@pytest.mark.parametrize(
    "title",
    ["Range &lt; 300 km", "Budget &gt; plan", "AT&amp;T wins award", "3 &lt; 5 &gt; 2"],
)
def test_comparison_signs_and_ampersands_stay_text(title: str) -> None:
    assert clean_title(title) == title.replace("&lt;", "<").replace("&gt;", ">").replace(
        "&amp;", "&"
    )


def test_a_huge_title_is_cut_at_a_word_with_an_ellipsis() -> None:
    title = clean_title("Frigate " * 200_000)
    assert len(title) <= MAX_TITLE_CHARS
    assert title.endswith("Frigate…")


def test_a_huge_word_is_cut_mid_word() -> None:
    assert cap_text("x" * 1000, 10) == "x" * 9 + "…"


def test_a_short_title_is_untouched() -> None:
    assert clean_title("Corvette floated out") == "Corvette floated out"
    assert cap_text("a" * MAX_TITLE_CHARS, MAX_TITLE_CHARS) == "a" * MAX_TITLE_CHARS


def test_a_title_stored_before_the_cap_is_capped_when_published(storage: Storage) -> None:
    storage.db.execute(
        "INSERT INTO feeds (url, name, created_at) VALUES ('https://n.test/f', 'N', '')"
    )
    [(feed_id,)] = storage.db.execute("SELECT id FROM feeds").fetchall()
    article = NewArticle(
        feed_id=feed_id, entry_key="k", guid=None, url="https://n.test/a",
        canonical_url="https://n.test/a", title="Tank " * 100_000, author=None, summary="",
        feed_content="", text="Body.", html="<p>Body.</p>", image=None, published_at=NOW,
        fetched_at=NOW, extraction_status="extracted", extraction_note="", signature=None,
        bands=(),
    )  # fmt: skip
    with storage.transaction():
        storage.add_article(article, Assignment(None, "new"), "story-k")
    [story] = storage.published_stories(10)
    assert len(story.title) <= MAX_TITLE_CHARS and story.title.endswith("…")
    assert all(len(source.title) <= MAX_TITLE_CHARS for source in story.sources)


def test_end_to_end_a_megabyte_title_with_escaped_markup(tmp_path: Path) -> None:
    huge_title = "&lt;img src=x onerror=alert(1)&gt;" + "Destroyer refit news " * 50_000
    huge_text = "Sailors repainted the destroyer hull in dry dock. " * 20_000
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Outlet</title>'
        f"<item><title>{huge_title}</title><link>https://outlet.example/refit</link>"
        f"<description>{huge_text}</description></item></channel></rss>"
    ).encode()
    assert len(feed) > 2_000_000
    with Site() as site:
        site.routes["/feed.xml"] = Route(body=feed, headers={"Content-Type": "application/rss+xml"})
        refreshed = refresh_once(
            tmp_path,
            f"feeds:\n  - name: Outlet\n    url: {site.base_url}/feed.xml\n    extract: false\n",
        )
    assert [outcome.status for outcome in refreshed.outcomes] == ["ok"]
    rss_title = ET.fromstring(refreshed.rendered["rss"]).findtext("channel/item/title") or ""
    atom = ET.fromstring(refreshed.rendered["atom"])
    atom_title = atom.findtext(
        "{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title"
    )
    [item] = json.loads(refreshed.rendered["json"])["items"]
    for title in (rss_title, atom_title or "", item["title"]):
        assert title.startswith("Destroyer refit news") and title.endswith("…")
        assert len(title) <= MAX_TITLE_CHARS
        assert "<" not in title and "onerror" not in title
    assert len(item["summary"]) <= MAX_TITLE_CHARS + 1  # the summary is capped too
    assert "onerror" not in refreshed.rendered["rss"]
