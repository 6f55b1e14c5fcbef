"""Tests for aggregator.cluster.events: pure functions, no IO, table-driven.

The two ~400-word articles under tests/data/articles are invented: two different
tank contracts, so they share the topic and its vocabulary but not their sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aggregator.cluster.duplicates import (
    BANDS,
    NUM_PERM,
    Fingerprint,
    assign_story,
    estimate_similarity,
    fingerprint,
    is_global_guid,
    new_story_id,
)
from aggregator.cluster.events import english_zipf
from aggregator.models import Assignment, Candidate

ARTICLES = Path(__file__).parent / "data" / "articles"
RIDGEBACK = (ARTICLES / "ridgeback-contract.txt").read_text(encoding="utf-8")
LYNX = (ARTICLES / "lynx-contract.txt").read_text(encoding="utf-8")
# The same wire story as another outlet republishes it: a new intro, a credit line.
RIDGEBACK_COPY = (
    "KESSEL (Northern Wire) - Here is the full report from our partner agency.\n\n"
    + RIDGEBACK
    + "\n\nReporting by Anna Kowal; editing by Tom Reyes. (c) 2025 Northern Wire Service."
)
THRESHOLD = 0.5


def fp(text: str) -> Fingerprint:
    result = fingerprint(text)
    assert result is not None
    return result


def candidate(
    article_id: int,
    *,
    story: str = "story-a",
    url: str = "https://other.example/a",
    guid: str | None = None,
    text: str | None = None,
) -> Candidate:
    signature = fp(text).signature if text else None
    return Candidate(article_id, story, url, guid, signature)


def assign(
    candidates: list[Candidate],
    *,
    url: str = "https://new.example/story",
    guid: str | None = None,
    text: str | None = None,
) -> Assignment:
    signature = fp(text).signature if text else None
    return assign_story(
        canonical_url=url,
        guid=guid,
        signature=signature,
        candidates=candidates,
        threshold=THRESHOLD,
    )


# -- fingerprints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "Tank deal signed.", " ".join(f"word{i}" for i in range(26))],
    ids=["empty", "headline", "26-words"],
)
def test_short_text_has_no_fingerprint(text: str) -> None:
    assert fingerprint(text) is None


def test_fingerprint_shape() -> None:
    result = fp(RIDGEBACK)
    assert len(result.signature) == NUM_PERM * 8
    assert len(result.bands) == BANDS
    assert [key.split(":")[0] for key in result.bands] == [str(i) for i in range(BANDS)]


def test_fingerprint_is_deterministic_and_ignores_case_and_punctuation() -> None:
    shouted = re.sub(r"[.,]", " ;", RIDGEBACK.upper())
    assert fp(RIDGEBACK) == fp(RIDGEBACK)
    assert fp(shouted) == fp(RIDGEBACK)


# -- similarity ------------------------------------------------------------------------


def test_identical_text_has_similarity_one() -> None:
    signature = fp(RIDGEBACK).signature
    assert estimate_similarity(signature, signature) == 1.0


def test_republished_copy_is_a_near_duplicate() -> None:
    original, copy = fp(RIDGEBACK), fp(RIDGEBACK_COPY)
    assert estimate_similarity(original.signature, copy.signature) >= 0.5
    assert set(original.bands) & set(copy.bands)


def test_two_tank_contracts_are_not_duplicates() -> None:
    ridgeback, lynx = fp(RIDGEBACK), fp(LYNX)
    assert estimate_similarity(ridgeback.signature, lynx.signature) < 0.2
    assert not set(ridgeback.bands) & set(lynx.bands)


def test_signatures_of_different_lengths_are_not_similar() -> None:
    signature = fp(RIDGEBACK).signature
    assert estimate_similarity(signature, signature[:-8]) == 0.0


# -- guids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guid", "is_global"),
    [
        (None, False),
        ("", False),
        ("1234", False),
        ("post-8812", False),
        ("https://wire.example/2025/03/ridgeback", True),
        ("tag:wire.example,2025:ridgeback", True),
        ("urn:uuid:6f1c2c1e-7d8a-4a38-9d5b-1c0f0b6a9e42", True),
        ("6f1c2c1e7d8a4a389d5b1c0f0b6a9e42", True),  # long opaque ids are unique enough
    ],
)
def test_is_global_guid(guid: str | None, is_global: bool) -> None:
    assert is_global_guid(guid) is is_global


# -- assign_story ----------------------------------------------------------------------


def test_same_canonical_url_joins_by_url() -> None:
    candidates = [
        candidate(1, story="s1", url="https://other.example/a"),
        candidate(2, story="s2", url="https://new.example/story"),
    ]
    assert assign(candidates) == Assignment("s2", "url", 1.0, 2)


def test_url_beats_guid_and_body() -> None:
    guid = "tag:wire.example,2025:ridgeback"
    candidates = [
        candidate(1, story="by-guid", guid=guid, text=RIDGEBACK),
        candidate(2, story="by-url", url="https://new.example/story"),
    ]
    assert assign(candidates, guid=guid, text=RIDGEBACK).method == "url"


def test_same_global_guid_joins_by_guid() -> None:
    guid = "https://wire.example/2025/03/ridgeback"
    candidates = [candidate(7, story="s7", guid=guid)]
    assert assign(candidates, guid=guid) == Assignment("s7", "guid", 1.0, 7)


def test_same_short_guid_does_not_join() -> None:
    # Two unrelated sites both number their posts; "1234" says nothing across feeds.
    candidates = [candidate(7, story="s7", guid="1234")]
    assert assign(candidates, guid="1234") == Assignment(None, "new")


def test_near_duplicate_body_joins_with_its_score() -> None:
    candidates = [
        candidate(3, story="lynx", text=LYNX),
        candidate(4, story="ridgeback", text=RIDGEBACK),
    ]
    result = assign(candidates, text=RIDGEBACK_COPY)
    assert result.method == "near-duplicate"
    assert result.story_id == "ridgeback"
    assert result.matched_article_id == 4
    assert result.score is not None and THRESHOLD <= result.score <= 1.0


def test_body_below_threshold_starts_a_new_story() -> None:
    candidates = [candidate(3, story="lynx", text=LYNX)]
    assert assign(candidates, text=RIDGEBACK) == Assignment(None, "new")


@pytest.mark.parametrize(
    "candidates",
    [[], [candidate(5, text=None)]],
    ids=["no-candidates", "candidate-without-signature"],
)
def test_nothing_in_common_starts_a_new_story(candidates: list[Candidate]) -> None:
    result = assign(candidates, text=RIDGEBACK)
    assert result == Assignment(None, "new")
    assert result.story_id is None


def test_empty_url_never_matches_an_empty_url() -> None:
    assert assign([candidate(1, url="")], url="").method == "new"


# -- story ids -------------------------------------------------------------------------


def test_new_story_id_is_deterministic_16_hex() -> None:
    story_id = new_story_id("https://wire.example/feed", "wire-77")
    assert story_id == new_story_id("https://wire.example/feed", "wire-77")
    assert re.fullmatch(r"[0-9a-f]{16}", story_id)
    assert story_id != new_story_id("https://wire.example/feed", "wire-78")
    assert story_id != new_story_id("https://other.example/feed", "wire-77")


def test_a_word_s_english_frequency_is_wordfreq_s_to_the_hundredth() -> None:
    # english_zipf reads plain words straight from wordfreq's table; every kind of term
    # must get exactly what wordfreq.zipf_frequency gives
    wordfreq = pytest.importorskip("wordfreq")
    listed = [word for word in wordfreq.get_frequency_dict("en") if word.isascii()]
    invented = ["kelvikburg", "ostrander", "brennholm", "qz"]
    unusual = ["f35", "t-90", "don't", "über", "2026", "x1", "naïve", "k9s", "tu160m"]
    for term in [*listed[::37], *invented, *unusual]:
        assert english_zipf(term) == wordfreq.zipf_frequency(term, "en"), term
