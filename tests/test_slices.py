"""Slices of the published feed (issue 6): tag, source, full-text search, min_sources,
limit and a paging cursor, straight against storage; the query-string parser; named
slices in feeds.yaml (`outputs:`); `aggregator feed` with filters."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.config import Config, FeedSource, OutputSlice, load_config
from aggregator.errors import BadRequest, ConfigError
from aggregator.models import Assignment, NewArticle, PageCursor, StoryFilter
from aggregator.publish.query import (
    FeedQuery,
    decode_cursor,
    encode_cursor,
    parse_feed_query,
    read_page,
)
from aggregator.storage import Storage, fts_query

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
FEEDS = [
    FeedSource(url="https://naval.test/feed", name="Harbour Watch", tags=("naval",)),
    FeedSource(url="https://air.test/feed", name="Skyline Defence", tags=("air", "europe")),
    FeedSource(url="https://wire.test/feed", name="Allied Wire", tags=("general",)),
]


def add(
    storage: Storage,
    feed_id: int,
    key: str,
    *,
    story: str | None = None,
    title: str = "",
    text: str = "Plain body text.",
    hours: int = 0,
) -> None:
    """Store one article; ``story`` joins an existing story, else a new one ``s-KEY``.
    It is added to the search index as at the end of the refresh that stored it."""
    moment = T0 + timedelta(hours=hours)
    article = NewArticle(
        feed_id=feed_id, entry_key=key, guid=None, url=f"https://outlet{feed_id}.test/{key}",
        canonical_url=f"https://outlet{feed_id}.test/{key}", title=title or f"Story {key}",
        author=None, summary="", feed_content="", text=text, html=f"<p>{text}</p>",
        image=None, published_at=moment, fetched_at=moment, extraction_status="extracted",
        extraction_note="", signature=None, bands=(),
    )  # fmt: skip
    assignment = Assignment(story, "near-duplicate" if story else "new", 0.9 if story else None)
    with storage.transaction():
        storage.add_article(article, assignment, f"s-{key}")
    storage.index_for_search()


def fill_newsroom(storage: Storage) -> Storage:
    """Four stories: a naval one three outlets carried, an air one, a wire one, a
    second naval one. Newest first: s-n2, s-w1, s-a1, s-n1."""
    storage.sync_feeds(FEEDS, T0)
    add(storage, 1, "n1", title="Frigate Vigilant floated out at Gdynia", hours=0,
        text="The frigate left the dry dock on Monday morning.")  # fmt: skip
    add(storage, 2, "n1-air", story="s-n1", hours=1)
    add(storage, 3, "n1-wire", story="s-n1", hours=2)
    add(storage, 2, "a1", title="Tanker aircraft order signed", hours=3,
        text="Four tankers for the air arm.")  # fmt: skip
    add(storage, 3, "w1", title="Budget hearing postponed", hours=4)
    add(storage, 1, "n2", title="Minehunter sea trials begin", hours=5,
        text="Sea trials in the Baltic.")  # fmt: skip
    return storage


@pytest.fixture
def newsroom(storage: Storage) -> Storage:
    return fill_newsroom(storage)


def ids(storage: Storage, story_filter: StoryFilter, limit: int = 10) -> list[str]:
    return [story.id for story in storage.published_stories(limit, story_filter)]


def test_no_filter_lists_every_story_newest_first(newsroom: Storage) -> None:
    assert ids(newsroom, StoryFilter()) == ["s-n2", "s-w1", "s-a1", "s-n1"]


def test_tag_filter_matches_any_member_feeds_tag(newsroom: Storage) -> None:
    # s-n1 carries "air" too: an air outlet joined it.
    assert ids(newsroom, StoryFilter(tags=("naval",))) == ["s-n2", "s-n1"]
    assert ids(newsroom, StoryFilter(tags=("AIR",))) == ["s-a1", "s-n1"]
    assert ids(newsroom, StoryFilter(tags=("general", "naval"))) == ["s-n2", "s-w1", "s-n1"]
    assert ids(newsroom, StoryFilter(tags=("space",))) == []


def test_source_filter_matches_feed_names(newsroom: Storage) -> None:
    assert ids(newsroom, StoryFilter(sources=("Allied Wire",))) == ["s-w1", "s-n1"]
    assert ids(newsroom, StoryFilter(sources=("harbour watch",))) == ["s-n2", "s-n1"]


def test_min_sources_counts_outlets(newsroom: Storage) -> None:
    assert ids(newsroom, StoryFilter(min_sources=3)) == ["s-n1"]
    assert ids(newsroom, StoryFilter(min_sources=4)) == []


def test_full_text_search_over_titles_and_bodies(newsroom: Storage) -> None:
    assert ids(newsroom, StoryFilter(query="frigate")) == ["s-n1"]
    assert ids(newsroom, StoryFilter(query="sea TRIALS")) == ["s-n2"]
    assert ids(newsroom, StoryFilter(query="tankers")) == ["s-a1"]
    assert ids(newsroom, StoryFilter(query="frigate tankers")) == []  # every word must match


@pytest.mark.parametrize(
    "hostile", ['"unbalanced', "NEAR(a b", "title:frigate", "a*", "-", "AND OR NOT", "^x"]
)
def test_search_syntax_in_user_input_is_never_an_error(newsroom: Storage, hostile: str) -> None:
    newsroom.published_stories(10, StoryFilter(query=hostile))  # no exception


def test_fts_query_quotes_words_and_bounds_them() -> None:
    assert fts_query('frigate "NEAR" title:x') == '"frigate" "NEAR" "title" "x"'
    assert fts_query("  ") == ""
    assert len(fts_query("word " * 100).split()) == 12


def test_search_index_follows_new_articles(newsroom: Storage) -> None:
    add(newsroom, 3, "late", story="s-a1", hours=6, text="Refuelling booms certified.")
    assert ids(newsroom, StoryFilter(query="booms")) == ["s-a1"]


SONOBUOYS = NewArticle(
    feed_id=3, entry_key="queued", guid=None, url="https://outlet3.test/queued",
    canonical_url="https://outlet3.test/queued", title="Sonar buoys delivered",
    author=None, summary="", feed_content="", text="Sonobuoys for the patrol wing.",
    html="<p>Sonobuoys for the patrol wing.</p>", image=None, published_at=T0,
    fetched_at=T0, extraction_status="extracted", extraction_note="", signature=None,
    bands=(),
)  # fmt: skip


def search_index_is_sound(storage: Storage) -> bool:
    try:  # FTS5 compares its index with the articles table (rank 1), row by row
        storage.db.execute(
            "INSERT INTO article_search (article_search, rank) VALUES ('integrity-check', 1)"
        )
    except Exception:
        return False
    return True


def test_articles_are_found_once_added_to_the_search_index(newsroom: Storage) -> None:
    # issue 18: a refresh queues its articles and indexes them in one statement
    with newsroom.transaction():
        newsroom.add_article(SONOBUOYS, Assignment(None, "new"), "s-queued")
    assert ids(newsroom, StoryFilter(query="sonobuoys")) == []  # stored, not indexed yet
    assert newsroom.index_for_search() == 1
    assert ids(newsroom, StoryFilter(query="sonobuoys")) == ["s-queued"]
    assert newsroom.index_for_search() == 0  # nothing twice
    assert search_index_is_sound(newsroom)  # sound while nothing is queued


def test_articles_a_crash_left_queued_are_indexed_by_the_next_process(
    newsroom: Storage, tmp_path: Path
) -> None:
    with newsroom.transaction():  # stored, then the process is killed before its end
        newsroom.add_article(
            replace(SONOBUOYS, entry_key="crashed"), Assignment(None, "new"), "s-crashed"
        )
    newsroom.close()
    after = Storage.open(tmp_path / "test.db")
    try:
        assert after.index_for_search() == 1
        assert ids(after, StoryFilter(query="sonobuoys")) == ["s-crashed"]
    finally:
        after.close()


def test_a_queued_article_deleted_or_edited_leaves_the_index_sound(newsroom: Storage) -> None:
    # FTS5 must never be told to delete a row it did not index (that corrupts it), nor
    # index one twice: a queued article's edit and delete change the queue only
    draft = replace(
        SONOBUOYS, entry_key="edited", url="https://outlet3.test/edited",
        canonical_url="https://outlet3.test/edited", title="Radar upgrade",
        text="First draft about turbines.", html="<p>First draft about turbines.</p>",
        extraction_status="feed",
    )  # fmt: skip
    gone = replace(
        draft, entry_key="gone", url="https://outlet3.test/gone",
        canonical_url="https://outlet3.test/gone",
    )  # fmt: skip
    with newsroom.transaction():
        newsroom.add_article(draft, Assignment(None, "new"), "s-edited")
        newsroom.db.execute(
            "UPDATE articles SET text = 'Corrected copy about gyroscopes.'"
            " WHERE entry_key = 'edited'"
        )
        newsroom.add_article(gone, Assignment(None, "new"), "s-gone")
    newsroom.delete_stories(["s-gone"])  # deleted while still queued
    newsroom.delete_stories(["s-w1"])  # indexed long ago: taken out of the index
    assert newsroom.index_for_search() == 1
    assert search_index_is_sound(newsroom)
    assert ids(newsroom, StoryFilter(query="gyroscopes")) == ["s-edited"]
    assert ids(newsroom, StoryFilter(query="turbines")) == []
    assert ids(newsroom, StoryFilter(query="budget")) == []  # s-w1's title, gone


def test_filters_combine(newsroom: Storage) -> None:
    assert ids(newsroom, StoryFilter(tags=("naval",), min_sources=2)) == ["s-n1"]
    assert ids(newsroom, StoryFilter(tags=("naval",), query="minehunter")) == ["s-n2"]


def test_cursor_pages_through_without_gaps_or_repeats(newsroom: Storage) -> None:
    seen: list[str] = []
    query = FeedQuery(limit=3)
    while True:
        stories, cursor = read_page(newsroom, query)
        seen += [story.id for story in stories]
        if cursor is None:
            break
        query = FeedQuery(limit=3, after=cursor)
    assert seen == ["s-n2", "s-w1", "s-a1", "s-n1"]


def test_cursor_is_stable_when_new_stories_arrive(newsroom: Storage) -> None:
    first, cursor = read_page(newsroom, FeedQuery(limit=2))
    assert cursor is not None
    add(newsroom, 3, "breaking", hours=9)  # newer than everything: lands on page one
    second, _ = read_page(newsroom, FeedQuery(limit=2, after=cursor))
    assert [story.id for story in second] == ["s-a1", "s-n1"]


def test_cursor_breaks_ties_on_the_same_second(storage: Storage) -> None:
    storage.sync_feeds(FEEDS, T0)
    for key in ("b", "a", "c"):
        add(storage, 1, key)  # three stories published at the same instant
    first, cursor = read_page(storage, FeedQuery(limit=2))
    assert cursor is not None
    rest, end = read_page(storage, FeedQuery(limit=2, after=cursor))
    assert [s.id for s in first + rest] == ["s-a", "s-b", "s-c"] and end is None


def test_story_gaining_a_source_keeps_its_id_and_moves_its_updated_date(
    newsroom: Storage,
) -> None:
    # Issue 6: readers see the story update, never a second copy of it.
    before = {story.id: story for story in newsroom.published_stories(10)}["s-a1"]
    add(newsroom, 1, "a1-naval", story="s-a1", hours=8)
    after = {story.id: story for story in newsroom.published_stories(10)}["s-a1"]
    assert after.id == before.id and after.published == before.published
    assert after.updated > before.updated
    assert len(after.sources) == len(before.sources) + 1


def test_content_version_moves_when_a_source_joins(newsroom: Storage) -> None:
    version = newsroom.content_version()
    add(newsroom, 1, "a1-naval", story="s-a1", hours=8)
    assert newsroom.content_version() != version


def test_published_tags_are_the_enabled_feeds_tags(newsroom: Storage) -> None:
    assert newsroom.published_tags() == ["air", "europe", "general", "naval"]


# --- the query string ---------------------------------------------------------------


def test_query_string_parameters_become_a_slice() -> None:
    query = parse_feed_query(
        {"tag": ["naval,air", "naval"], "source": ["Allied Wire"], "q": [" frigate "],
         "min_sources": ["2"], "limit": ["5"]},
        default_limit=50,
    )  # fmt: skip
    assert query.story_filter == StoryFilter(
        tags=("naval", "air"), sources=("Allied Wire",), query="frigate", min_sources=2
    )
    assert query.limit == 5
    assert query.query_string() == (
        "tag=naval&tag=air&source=Allied+Wire&q=frigate&min_sources=2&limit=5"
    )


def test_bad_numbers_fall_back_and_limits_are_bounded() -> None:
    assert parse_feed_query({"limit": ["lots"]}, 50).limit == 50
    assert parse_feed_query({"limit": ["100000"]}, 50).limit == 1000
    assert parse_feed_query({"limit": ["-3"]}, 50).limit == 1
    assert parse_feed_query({"min_sources": ["x"]}, 50).story_filter.min_sources == 1
    assert parse_feed_query({}, 50).query_string() == ""  # the default feed links plainly


def test_hostile_values_are_bounded() -> None:
    query = parse_feed_query({"tag": [",".join(f"t{i}" for i in range(100))], "q": ["x" * 5000]}, 9)
    assert len(query.story_filter.tags) == 20
    assert len(query.story_filter.query) == 200


def test_named_slice_supplies_defaults_and_parameters_replace_them() -> None:
    naval = OutputSlice(path="/naval.xml", title="Naval", tags=("naval",), limit=10)
    query = parse_feed_query({}, 50, naval)
    assert (query.story_filter.tags, query.limit, query.path) == (("naval",), 10, "/naval.xml")
    assert parse_feed_query({"tag": ["air"]}, 50, naval).story_filter.tags == ("air",)


def test_cursor_round_trips_and_damaged_ones_are_refused() -> None:
    cursor = PageCursor(T0, "3f2a9c41d07e")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    for damaged in ("!!!", "bm90IGEgY3Vyc29y", encode_cursor(cursor)[:-6]):
        with pytest.raises(BadRequest):
            decode_cursor(damaged)


def test_feed_command_prints_a_slice(newsroom: Storage, tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  database: test.db\nfeeds: []\n")  # the fixture's file
    result = CliRunner().invoke(
        cli, ["--config", str(config), "feed", "--format", "json", "--tag", "naval",
              "--min-sources", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"urn:aggregator:story:s-n1"' in result.output
    assert "s-n2" not in result.output


# --- named slices in feeds.yaml -----------------------------------------------------------


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "feeds.yaml"
    # A file must list its feeds (issue 19); these tests are about the rest.
    path.write_text(text if "feeds:" in text else text + "feeds: []\n")
    return load_config(path)


def test_outputs_are_read_from_feeds_yaml(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "outputs:\n  - path: /naval.xml\n    tags: naval\n  - path: /slices/top.atom\n"
        "    min_sources: 3\n    limit: 20\n  - path: /x.json\n    sources: [Allied Wire]\n",
    )
    assert [(o.path, o.format) for o in config.outputs] == [
        ("/naval.xml", "rss"), ("/slices/top.atom", "atom"), ("/x.json", "json"),
    ]  # fmt: skip
    assert config.outputs[0].tags == ("naval",)
    assert config.outputs[2].sources == ("Allied Wire",)


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        ("  - path: naval.xml\n", "expected a path like '/naval.xml'"),
        ("  - path: /naval.html\n", "expected a path like '/naval.xml'"),
        ("  - path: /../etc/x.xml\n", "expected a path like '/naval.xml'"),
        ("  - path: /feed.xml\n", "outputs[0].path: path is built in"),
        ("  - path: /a.xml\n  - path: /a.xml\n", "outputs[1].path: duplicate path"),
        ("  - path: /a.xml\n    min_sources: 0\n", "greater than or equal to 1"),
        ("  - path: /a.xml\n    colour: red\n", "unknown key"),
    ],
)
def test_bad_outputs_name_file_line_and_field(tmp_path: Path, outputs: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)) as error:
        load(tmp_path, "feeds: []\noutputs:\n" + outputs)
    assert error.value.line is not None


def test_websub_hub_must_be_a_web_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="websub_hub"):
        load(tmp_path, "settings:\n  websub_hub: ftp://hub.example/\n")
    hub = load(tmp_path, "settings:\n  websub_hub: https://hub.example/\n").settings.websub_hub
    assert hub == "https://hub.example/"


def test_search_matches_word_forms(newsroom: Storage) -> None:
    # Issue 17: `frigate` found 1 story and `frigates` 2; English words are stemmed now.
    add(newsroom, 2, "fleet", title="Two frigates ordered for the fleet", hours=7)
    assert ids(newsroom, StoryFilter(query="frigate")) == ["s-fleet", "s-n1"]
    assert ids(newsroom, StoryFilter(query="frigates")) == ["s-fleet", "s-n1"]
    assert ids(newsroom, StoryFilter(query="ordering fleets")) == ["s-fleet"]


def test_page_order_is_by_latest_activity_and_pages_follow_it(newsroom: Storage) -> None:
    # Issue 17: a story outlets kept reporting sorted by its lead's date, below stories
    # reported once since. The page orders by each story's newest article.
    add(newsroom, 2, "n1-late", story="s-n1", hours=6)
    assert ids(newsroom, StoryFilter()) == ["s-n2", "s-w1", "s-a1", "s-n1"]  # the feeds
    active = [s.id for s in newsroom.published_stories(10, StoryFilter(), by_activity=True)]
    assert active == ["s-n1", "s-n2", "s-w1", "s-a1"]
    seen: list[str] = []
    query: FeedQuery | None = FeedQuery(limit=3)
    while query is not None:
        stories, cursor = read_page(newsroom, query, by_activity=True)
        seen += [story.id for story in stories]
        query = None if cursor is None else FeedQuery(limit=3, after=cursor)
    assert seen == active
