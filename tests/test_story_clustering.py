"""Story clustering on small, invented defence-news cases whose grouping is known.

tests/data/events/cases.json holds write-ups by different outlets of the same events
(a frigate commissioning, a tank contract, an air strike), events of the same kind
that must stay apart (two frigates, two tank deals, two strikes in one province in one
week), and a wire copy republished with an editor's note and a credit line.
tests/data/events/hard_cases.json holds two reliefs of command in one week, the later
reports recalling the earlier one by name: only their titles and leads tell them apart.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.cluster import duplicates
from aggregator.cluster import events as clusterer
from aggregator.config import FeedSource, Settings
from aggregator.models import NewArticle, StoryProfile
from aggregator.pipeline.stories import (
    StoryNotFound,
    add_article_to_story,
    merge_by_admin,
    split_article,
)
from aggregator.storage import Storage

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data/events/cases.json").read_text()
)
# Two events of one kind in one week, the later reports recalling the earlier by name.
HARD_CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data/events/hard_cases.json").read_text()
)
START = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
OUTLETS = sorted({case["outlet"] for case in CASES})
SETTINGS = Settings()


def feed_url(outlet: str) -> str:
    return f"https://{outlet.lower().replace(' ', '-')}.test/feed"


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = Storage.open(tmp_path / "stories.db")
    opened.sync_feeds(
        [FeedSource(url=feed_url(outlet), name=outlet, priority=0) for outlet in OUTLETS], START
    )
    yield opened
    opened.close()


def make_article(storage: Storage, case: dict[str, Any], hours: float | None = None) -> NewArticle:
    moment = START + timedelta(hours=case["hours"] if hours is None else hours)
    fingerprint = duplicates.fingerprint(case["text"])
    url = f"https://{case['outlet'].lower().replace(' ', '-')}.test/{case['id']}"
    return NewArticle(
        feed_id=storage.feed_state(feed_url(case["outlet"])).id,
        entry_key=url, guid=None, url=url, canonical_url=url, title=case["title"],
        author=None, summary="", feed_content="", text=case["text"],
        html=f"<p>{case['text']}</p>", image=None, published_at=moment, fetched_at=moment,
        extraction_status="extracted", extraction_note="",
        signature=fingerprint.signature if fingerprint else None,
        bands=fingerprint.bands if fingerprint else (),
    )  # fmt: skip


def add(
    storage: Storage,
    case: dict[str, Any],
    hours: float | None = None,
    settings: Settings = SETTINGS,
) -> Any:
    article = make_article(storage, case, hours)
    with storage.transaction():
        return add_article_to_story(
            storage, article, settings, new_story_id=duplicates.new_story_id("t", article.url)
        )


def test_each_event_becomes_exactly_one_story(storage: Storage) -> None:
    placed = {case["id"]: add(storage, case) for case in CASES}
    by_story: dict[str, set[str]] = defaultdict(set)
    for case in CASES:
        story = storage.resolve_story_id(placed[case["id"]].story_id)
        assert story is not None
        by_story[story].add(case["event"])
    assert all(len(events) == 1 for events in by_story.values()), by_story
    assert len(by_story) == len({case["event"] for case in CASES})


def test_a_report_that_recalls_an_older_event_of_the_same_kind_stays_apart(
    storage: Storage,
) -> None:
    # The frigate captain's relief would join the brigade commander's, two days older:
    # its last sentence recalls that one by name. Its own title and lead do not.
    placed = {case["id"]: add(storage, case) for case in HARD_CASES}
    assert placed["relief-frigate-harbour"].method == "new"
    brigade = storage.resolve_story_id(placed["relief-brigade-wire"].story_id)
    assert storage.resolve_story_id(placed["relief-brigade-frontier"].story_id) == brigade
    frigate = {storage.resolve_story_id(placed[key].story_id) for key in placed if "frigate" in key}
    assert brigade not in frigate and len(frigate) == 1


def test_copies_and_independent_reports_are_told_apart(storage: Storage) -> None:
    placed = {case["id"]: add(storage, case) for case in CASES}
    assert placed["depot-strike-republished"].method == "near-duplicate"
    assert placed["depot-strike-skyline"].method == "related"
    assert placed["stormcrest-harbour"].method == "related"
    assert placed["windrider-harbour"].method == "new"  # same kind of event, other ship
    assert placed["bastion-frontier"].method == "new"  # same week, other tank deal
    assert placed["bridge-strike-wire"].method == "new"  # same province, other strike
    story = storage.published_stories(100)
    depot = next(s for s in story if "Velgrad" in s.title)
    relations = {source.feed_name: source.relation for source in depot.sources}
    assert relations == {
        "Carrow Wire": "lead",
        "Skyline Defence": "related",
        "Frontier Post": "duplicate",
    }


def test_related_scores_are_recorded_for_explain(storage: Storage) -> None:
    placed = {case["id"]: add(storage, case) for case in CASES}
    members = storage.story_members(placed["stormcrest-wire"].story_id)
    methods = {member["feed_name"]: (member["method"], member["score"]) for member in members}
    assert methods["Carrow Wire"] == ("new", None)
    assert methods["Harbour Watch"][0] == "related"
    assert SETTINGS.clustering.join_threshold <= methods["Harbour Watch"][1] <= 1.0


def test_a_story_closes_after_its_window(storage: Storage) -> None:
    first, second = (case for case in CASES if case["event"] == "windrider")
    opened = add(storage, first)
    late = add(storage, second, hours=first["hours"] + 72 + 1)
    assert late.method == "new" and late.story_id != opened.story_id


def test_a_story_stops_taking_related_coverage_after_its_max_age(storage: Storage) -> None:
    # Reports 60 h apart each arrive inside the story's 72 h window, but the last comes
    # 120 h after the first: past a max_age of 4 days it starts a new story. A copy of
    # the first article still joins it, however late.
    settings = Settings.model_validate({"clustering": {"max_age": "4d"}})
    frigate = {case["id"]: case for case in CASES if case["event"] == "stormcrest"}
    first = add(storage, frigate["stormcrest-wire"], 0, settings)
    second = add(storage, frigate["stormcrest-harbour"], 60, settings)
    third = add(storage, frigate["stormcrest-skyline"], 120, settings)
    assert (second.method, second.story_id) == ("related", first.story_id)
    assert third.method == "new" and third.story_id != first.story_id

    depot = {case["id"]: case for case in CASES if case["event"] == "depot-strike"}
    original = add(storage, depot["depot-strike-wire"], 0, settings)
    copy = add(storage, depot["depot-strike-republished"], 120, settings)
    assert (copy.method, copy.story_id) == ("near-duplicate", original.story_id)
    assert Settings().clustering.max_age == timedelta(days=7)


def test_a_single_early_report_joins_the_story_that_grew_up_around_it(
    storage: Storage,
) -> None:
    # A short first report fits nothing when it comes, not even the wire's full story
    # an hour later (a stricter join threshold than the default makes sure of it, and
    # merges through one bridging article are off). Once another outlet's report has
    # grown the wire's story, the early report fits it, and joins it as it would had
    # it come now; the older id survives.
    settings = Settings.model_validate(
        {"clustering": {"join_threshold": 0.45, "merge_threshold": 1.0}}
    )
    flash = {
        "id": "stormcrest-flash", "event": "stormcrest", "outlet": "Frontier Post",
        "title": "Flags and a parade at Kelvik",
        "text": "Flags and a parade at Kelvik. Kelvik naval base was decked out in flags on "
        "Tuesday as 146 sailors paraded on the quayside for a commissioning. More soon.",
    }  # fmt: skip
    frigate = {case["id"]: case for case in CASES if case["event"] == "stormcrest"}
    early = add(storage, flash, -1, settings)
    wire = add(storage, frigate["stormcrest-wire"], 0, settings)
    assert early.method == wire.method == "new"
    harbour = add(storage, frigate["stormcrest-harbour"], 3, settings)
    assert harbour.method == "related" and harbour.story_id == early.story_id
    assert harbour.merged == (wire.story_id,)
    assert storage.resolve_story_id(wire.story_id) == early.story_id


def test_an_article_that_fits_two_stories_merges_them_into_the_older(storage: Storage) -> None:
    wire, harbour, skyline = (case for case in CASES if case["event"] == "stormcrest")
    # Two reports that (with a strict join threshold) start separate stories ...
    strict = Settings.model_validate({"clustering": {"join_threshold": 0.99}})
    stories = []
    for case in (wire, harbour):
        article = make_article(storage, case)
        with storage.transaction():
            stories.append(
                add_article_to_story(storage, article, strict, new_story_id=case["id"]).story_id
            )
    assert stories == ["stormcrest-wire", "stormcrest-harbour"]
    # ... and a third that matches both shows they are one event.
    loose = Settings.model_validate({"clustering": {"join_threshold": 0.2, "merge_threshold": 0.2}})
    article = make_article(storage, skyline)
    with storage.transaction():
        placed = add_article_to_story(storage, article, loose, new_story_id="x")
    assert placed.story_id == "stormcrest-wire" and placed.merged == ("stormcrest-harbour",)
    assert storage.resolve_story_id("stormcrest-harbour") == "stormcrest-wire"
    assert storage.story_aliases("stormcrest-wire") == ["stormcrest-harbour"]
    assert [s.id for s in storage.published_stories(10)] == ["stormcrest-wire"]
    assert len(storage.published_stories(10)[0].sources) == 3


def test_the_lead_follows_feed_priority_then_completeness(storage: Storage) -> None:
    storage.sync_feeds(
        [
            FeedSource(
                url=feed_url(outlet), name=outlet, priority=5 if outlet == "Skyline Defence" else 0
            )
            for outlet in OUTLETS
        ],
        START,
    )
    for case in CASES:
        if case["event"] == "stormcrest":
            add(storage, case)
    story = storage.published_stories(10)[0]
    assert story.sources[0].feed_name == "Skyline Defence"
    assert story.title == "Aldoria commissions anti-submarine frigate Stormcrest"


def test_admin_split_and_merge_are_remembered(storage: Storage) -> None:
    placed = {case["id"]: add(storage, case) for case in CASES if case["event"] == "kestrel"}
    url = "https://frontier-post.test/kestrel-frontier"
    with storage.transaction():
        old, new = split_article(storage, url, START + timedelta(days=3))
    assert old == placed["kestrel-wire"].story_id and new != old
    assert storage.story_urls(new) == {url}
    with storage.transaction():  # an automatic merge must not undo the admin's split
        from aggregator.pipeline.stories import merge_stories

        assert merge_stories(storage, old, new, START + timedelta(days=3)) is None
    with storage.transaction():  # but the admin can merge again on purpose
        survivor = merge_by_admin(storage, old, new, START + timedelta(days=4))
    assert survivor in {old, new}
    with pytest.raises(StoryNotFound):
        merge_by_admin(storage, old, "no-such-story", START)


def test_event_terms_weigh_title_and_names_over_body_words() -> None:
    terms = clusterer.event_terms(
        "Navy commissions Stormcrest", "Navy commissions Stormcrest. The ship sailed " * 3
    )
    assert terms["stormcrest"] > terms["ship"]
    assert "the" not in terms


def test_place_article_needs_the_threshold_and_reports_merges() -> None:
    article = {"stormcrest": 0.8, "kelvik": 0.6}

    def profile(centroid: dict[str, float]) -> StoryProfile:
        shared = {term: weight for term, weight in centroid.items() if term in article}
        return StoryProfile(shared, clusterer.centroid_norm(centroid, idf_of))

    idf_of = clusterer.idf_table(["stormcrest", "kelvik", "tank"], {}, 10)

    profiles = {
        "a": profile({"stormcrest": 1.0, "kelvik": 1.0}),
        "b": profile({"stormcrest": 1.0}),
        "c": profile({"tank": 1.0}),
    }
    vector = clusterer.weigh(article, idf_of)
    placement = clusterer.place_article(
        vector, profiles, idf_of, join_threshold=0.5, merge_threshold=0.7
    )
    assert placement.story_id == "a" and [story for story, _ in placement.also] == ["b"]
    assert placement.score == pytest.approx(
        clusterer.story_similarity(vector, profiles["a"], idf_of), abs=1e-3
    )
    none = clusterer.place_article(
        vector, {"c": profiles["c"]}, idf_of, join_threshold=0.5, merge_threshold=0.7
    )
    assert none.story_id is None and none.score == 0.0


def test_a_story_must_also_fit_the_articles_title_and_lead() -> None:
    idf_of = clusterer.idf_table(["thornwake", "aground", "ostrander", "relieved"], {}, 10)
    centroid = {"ostrander": 1.0, "relieved": 1.0}
    profile = StoryProfile(
        {"ostrander": 1.0, "relieved": 1.0}, clusterer.centroid_norm(centroid, idf_of)
    )
    # the whole article shares the story's names, but its opening is about another ship
    article = clusterer.weigh(
        {"thornwake": 1.0, "aground": 1.0, "ostrander": 1.5, "relieved": 1.5}, idf_of
    )
    lead = clusterer.weigh({"thornwake": 1.0, "aground": 1.0, "relieved": 0.3}, idf_of)

    def place(threshold: float) -> clusterer.Placement:
        return clusterer.place_article(
            article, {"s": profile}, idf_of, join_threshold=0.3, merge_threshold=0.9,
            lead=lead, lead_threshold=threshold,
        )  # fmt: skip

    assert place(0.0).story_id == "s"  # the test switched off: it joins
    assert place(0.2).story_id is None and place(0.2).score < 0.3
    report = clusterer.weigh({"ostrander": 1.0, "relieved": 1.0, "aground": 0.2}, idf_of)
    assert clusterer.place_article(
        report, {"s": profile}, idf_of, join_threshold=0.3, merge_threshold=0.9,
        lead=report, lead_threshold=0.2,
    ).story_id == "s"  # fmt: skip


def test_lead_terms_are_the_title_and_lead_part_of_event_terms() -> None:
    text = "Thornwake runs aground. " + "Divers found damage. " * 30 + "Ostrander was relieved."
    lead = clusterer.lead_terms("Thornwake runs aground", text)
    full = clusterer.event_terms("Thornwake runs aground", text)
    assert set(lead) <= set(full) and "ostrander" in full and "ostrander" not in lead


def test_shared_figures_raise_a_score_and_different_ones_lower_it() -> None:
    # Two strikes of one kind: the same names, but a report of the other one quotes
    # other figures (a toll, a year); figures move a score at most halfway to 1.
    idf_of = clusterer.idf_table(["kelvik", "strike", "14", "2026", "9", "2019"], {}, 10)
    centroid = {"kelvik": 1.0, "strike": 1.0, "14": 0.5, "2026": 0.5}
    profile = StoryProfile(
        centroid, clusterer.centroid_norm(centroid, idf_of), {"14": 0.5, "2026": 0.5}
    )

    def score(article: dict[str, float]) -> tuple[float, float]:
        vector = clusterer.weigh(article, idf_of)
        figures = clusterer.article_figures(vector)
        return (
            clusterer.relatedness(vector, figures, profile, idf_of),
            clusterer.story_similarity(vector, profile, idf_of),
        )

    same, same_text = score({"kelvik": 1.0, "strike": 1.0, "14": 0.5, "2026": 0.5})
    other, other_text = score({"kelvik": 1.0, "strike": 1.0, "9": 0.5, "2019": 0.5})
    plain, plain_text = score({"kelvik": 1.0, "strike": 1.0})
    assert same > same_text and other < other_text and plain == plain_text
    assert same <= (1 + same_text) / 2


def test_near_identical_flood_is_compared_with_a_bounded_number_of_copies(
    storage: Storage,
) -> None:
    # A hostile feed of near-identical bodies must not make each new article cost one
    # comparison per stored copy (found by the issue 3 benchmark).
    from aggregator.storage.articles import MAX_BAND_CANDIDATES

    case = next(case for case in CASES if case["id"] == "kestrel-wire")
    for copy in range(MAX_BAND_CANDIDATES + 10):
        add(storage, {**case, "id": f"kestrel-copy-{copy}"}, hours=copy / 60)
    probe = make_article(storage, {**case, "id": "kestrel-probe"}, hours=2)
    found = storage.duplicate_candidates(
        canonical_url=probe.canonical_url, guid=None, bands=probe.bands, since=START
    )
    assert 0 < len(found) <= MAX_BAND_CANDIDATES
    assert len({candidate.story_id for candidate in found}) == 1  # all copies: one story
