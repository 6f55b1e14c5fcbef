"""Every published format validates (issue 6): Atom against the RFC 4287 RELAX NG
schema with jing, JSON Feed against a JSON Feed 1.1 schema, RSS 2.0 against the
spec's rules; RSS and Atom round-trip through feedparser with ``bozo == 0``, JSON Feed
through the aggregator's own JSON Feed parser (feedparser 6.0 has none).

Schemas live in tests/data/schemas (see NOTICE there). The jing tests skip, saying
why, where jing is not installed; .ci/run installs it.
"""

from __future__ import annotations

import email.utils
import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest

from aggregator.config import Settings
from aggregator.models import FeedMeta, FetchResult
from aggregator.parse.parser import parse_feed
from aggregator.publish.feeds import item_id, last_activity, render_feed
from aggregator.publish.output import render_from_storage
from aggregator.publish.query import parse_feed_query
from aggregator.storage import Storage
from tests.test_publisher import CONTRACT, META, STORIES
from tests.test_slices import fill_newsroom

SCHEMAS = Path(__file__).parent / "data" / "schemas"
GOLDEN = Path(__file__).parent / "data" / "golden"
ATOM = "{http://www.w3.org/2005/Atom}"
JING = shutil.which("jing")
needs_jing = pytest.mark.skipif(
    JING is None, reason="jing is not installed (Debian: apt-get install jing)"
)

# The feeds as they are really served: plain, paged with a hub and counts in titles,
# and empty.
VARIANTS: dict[str, tuple[Any, FeedMeta]] = {
    "plain": (STORIES, META),
    "paged": (
        STORIES,
        replace(
            META,
            self_path="/naval.atom?tag=naval&limit=3",
            next_path="/naval.atom?tag=naval&limit=3&after=abc",
            hub_url="https://hub.example.net/",
            title_source_count=True,
        ),
    ),
    "empty": ((), replace(META, updated=None)),
    "one-source": ((CONTRACT,), META),
}


def rendered(variant: str, fmt: str) -> bytes:
    stories, meta = VARIANTS[variant]
    return render_feed(stories, meta, fmt)


# --- Atom: RFC 4287 RELAX NG ------------------------------------------------------------


def jing_errors(document: bytes, tmp_path: Path) -> str:
    target = tmp_path / "feed.atom"
    target.write_bytes(document)
    assert JING is not None
    result = subprocess.run(
        [JING, "-c", str(SCHEMAS / "atom.rnc"), str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # jing prints one line per error on stdout and exits non-zero when there are any.
    return result.stdout.strip() if result.returncode else ""


@needs_jing
def test_atom_golden_and_every_variant_validate_with_jing(tmp_path: Path) -> None:
    documents = [(GOLDEN / "merged.atom").read_bytes()]
    documents += [rendered(variant, "atom") for variant in VARIANTS]
    # One jing run per document costs a JVM start each; validate them in one call.
    paths = []
    for index, document in enumerate(documents):
        path = tmp_path / f"feed{index}.atom"
        path.write_bytes(document)
        paths.append(str(path))
    assert JING is not None
    result = subprocess.run(
        [JING, "-c", str(SCHEMAS / "atom.rnc"), *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@needs_jing
def test_jing_does_reject_an_invalid_atom_feed(tmp_path: Path) -> None:
    # Proves the validator is really checking: an entry without its mandatory id.
    broken = rendered("plain", "atom").replace(
        b"<id>urn:aggregator:story:3f2a9c41d07e</id>", b"", 1
    )
    errors = jing_errors(broken, tmp_path)
    assert errors and "id" in errors


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_atom_schematron_rules_hold(variant: str) -> None:
    """The two rules RFC 4287 writes as Schematron, which jing does not check."""
    root = ET.fromstring(rendered(variant, "atom"))
    feed_has_author = root.find(f"{ATOM}author") is not None
    for entry in root.findall(f"{ATOM}entry"):
        assert feed_has_author or entry.find(f"{ATOM}author") is not None
        alternates = [
            link
            for link in entry.findall(f"{ATOM}link")
            if link.get("rel", "alternate") == "alternate"
        ]
        assert alternates or entry.find(f"{ATOM}content") is not None


def test_atom_paging_and_hub_links() -> None:
    root = ET.fromstring(rendered("paged", "atom"))
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links["self"] == "https://news.example.org/naval.atom?tag=naval&limit=3"
    assert links["next"] == "https://news.example.org/naval.atom?tag=naval&limit=3&after=abc"
    assert links["hub"] == "https://hub.example.net/"
    assert "next" not in {link.get("rel") for link in ET.fromstring(rendered("plain", "atom"))}


# --- JSON Feed 1.1 ----------------------------------------------------------------------


def json_feed_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_json_feed_validates_against_the_schema(variant: str) -> None:
    document = json.loads(rendered(variant, "json"))
    errors = [error.message for error in json_feed_validator().iter_errors(document)]
    assert errors == []


def test_json_feed_golden_validates() -> None:
    document = json.loads((GOLDEN / "merged.json").read_text())
    assert list(json_feed_validator().iter_errors(document)) == []


def test_json_schema_does_reject_a_broken_feed() -> None:
    document = json.loads(rendered("plain", "json"))
    del document["items"][0]["id"]
    document["items"][1]["date_modified"] = "Mon, 02 Jun 2025 18:05:00 GMT"  # RSS syntax
    document["titel"] = "typo"
    assert len(list(json_feed_validator().iter_errors(document))) == 3


def test_json_feed_paging_and_hub() -> None:
    document = json.loads(rendered("paged", "json"))
    assert document["feed_url"] == "https://news.example.org/naval.atom?tag=naval&limit=3"
    assert document["next_url"].endswith("&after=abc")
    assert document["hubs"] == [{"type": "WebSub", "url": "https://hub.example.net/"}]
    assert document["items"][0]["title"].endswith(" (3 sources)")


# --- RSS 2.0 --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rss_follows_the_rss_2_0_rules(variant: str) -> None:
    root = ET.fromstring(rendered(variant, "rss"))
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None and len(root) == 1
    for required in ("title", "link", "description"):
        assert channel.findtext(required), required
    self_links = [link for link in channel.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert len(self_links) == 1 and self_links[0].get("type") == "application/rss+xml"
    for date in [channel.findtext("lastBuildDate")] + [
        item.findtext("pubDate") for item in channel.findall("item")
    ]:
        if date is not None:  # RFC 822 dates, with a four-digit year and GMT
            assert email.utils.parsedate_to_datetime(date).tzinfo is not None
            assert date.endswith(" GMT")
    for item in channel.findall("item"):
        assert item.findtext("title") or item.findtext("description")
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") == "false"
        encoded = item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")
        assert encoded and "<p>Source: " in encoded


def test_rss_has_one_category_per_tag_and_a_next_link_when_paged() -> None:
    channel = ET.fromstring(rendered("paged", "rss")).find("channel")
    assert channel is not None
    first = channel.findall("item")[0]
    assert [c.text for c in first.findall("category")] == list(STORIES[0].tags)
    rels = {link.get("rel") for link in channel.findall(f"{ATOM}link")}
    assert rels == {"self", "next", "hub"}


# --- round trips through real parsers -------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_xml_formats_round_trip_through_feedparser(fmt: str, variant: str) -> None:
    stories, _ = VARIANTS[variant]
    parsed = feedparser.parse(io.BytesIO(rendered(variant, fmt)))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == {"rss": "rss20", "atom": "atom10"}[fmt]
    assert [entry.id for entry in parsed.entries] == [item_id(story) for story in stories]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_json_feed_round_trips_through_our_own_parser(variant: str) -> None:
    # feedparser 6.0 does not read JSON Feed; the aggregator's parser (which reads the
    # outlets' JSON Feeds) must read ours back, every item, with its dates.
    stories, _ = VARIANTS[variant]
    body = rendered(variant, "json")
    parsed = parse_feed(
        FetchResult(url=META.public_url, final_url=META.public_url, status=200, content=body),
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert parsed.warning is None
    assert [entry.guid for entry in parsed.entries] == [item_id(story) for story in stories]
    # The story's real time (issue 17), not when it was stored.
    assert [entry.updated for entry in parsed.entries] == [last_activity(s) for s in stories]


# --- feeds as served from storage: slices, paging links, escaping of query strings ----


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_slices_rendered_from_storage_validate(storage: Storage, fmt: str, tmp_path: Path) -> None:
    settings = Settings(public_url="https://news.example.org", title_source_count=True)
    query = parse_feed_query({"tag": ["naval", "air"], "limit": ["1"]}, 50)
    body = render_from_storage(fill_newsroom(storage), settings, fmt, query.limit, query).body
    if fmt == "json":
        document = json.loads(body)
        assert list(json_feed_validator().iter_errors(document)) == []
        assert "after=" in document["next_url"]
        return
    parsed = feedparser.parse(io.BytesIO(body))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert b"tag=naval&amp;tag=air&amp;limit=1&amp;after=" in body
    if fmt == "atom" and JING is not None:
        assert jing_errors(body, tmp_path) == ""
