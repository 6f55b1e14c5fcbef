"""Tests for the document frequencies kept in memory with write-behind
(storage/frequencies.py) and the stored terms (packed_terms.py): what is counted is
what SQL alone would have counted, a rollback takes its counts back, a crash loses no
count, and another connection's writes are seen."""

from __future__ import annotations

from array import array
from collections import Counter
from pathlib import Path

import pytest

from aggregator.cluster.features import text_features
from aggregator.models import Assignment, NewArticle
from aggregator.packed_terms import pack_terms, unpack_terms, unpack_terms_apart
from aggregator.pipeline.stories import count_uncounted
from aggregator.storage import Storage
from aggregator.storage.frequencies import DocumentCounts
from tests.test_storage import WIRE, feed_ids, new_article

NEW = Assignment(None, "new")
FRIGATE = {"frigate": 2.0, "kelvik": 1.5, "launched": 1.0}
CONVOY = {"convoy": 1.0, "kelvik": 1.0}


def store(
    storage: Storage, key: str, terms: dict[str, float], packed_terms: bytes | None = None
) -> int:
    """One article stored and counted in its own transaction, as a refresh does."""
    feed_id = feed_ids(storage, WIRE)[0]
    article: NewArticle = new_article(feed_id, key, terms=terms, packed_terms=packed_terms)
    with storage.transaction():
        article_id = storage.add_article(article, NEW, f"story-{key}")
        storage.count_document(article_id, terms)
    return article_id


def written(storage: Storage) -> tuple[int, dict[str, int]]:
    """The frequencies as the database holds them."""
    documents = storage.db.execute(
        "SELECT value FROM corpus_stats WHERE name = 'documents'"
    ).fetchone()
    df = dict(storage.db.execute("SELECT term, df FROM term_stats").fetchall())
    return (documents[0] if documents else 0), df


def test_counts_are_read_at_once_and_written_by_the_flush(storage: Storage) -> None:
    store(storage, "a", FRIGATE)
    store(storage, "b", CONVOY)
    assert storage.corpus_frequencies(["kelvik", "convoy", "tank"]) == (
        2,
        {"kelvik": 2, "convoy": 1},
    )
    assert written(storage) == (0, {})  # nothing written yet
    assert storage.flush_frequencies() == 2
    assert written(storage) == (2, {"frigate": 1, "kelvik": 2, "launched": 1, "convoy": 1})
    assert storage.uncounted_articles() == []
    assert storage.flush_frequencies() == 0  # nothing twice


def test_term_counts_answer_in_the_order_asked_with_zeros(storage: Storage) -> None:
    store(storage, "a", FRIGATE)
    store(storage, "b", CONVOY)
    assert storage.term_counts(["tank", "kelvik", "convoy"]) == (2, [0, 2, 1])


def test_an_article_counted_with_terms_never_read_is_counted_right() -> None:
    # The storing reads an article's counts before counting it; counted without that
    # read, its unread terms are not cached as 1 (they are read later, with the
    # database's value added).
    counts = DocumentCounts(df=Counter({"kelvik": 3, "tank": 0}), documents=7)
    counts.add(1, ("kelvik", "frigate", "tank"))
    assert counts.df["kelvik"] == 4
    assert "frigate" not in counts.df  # never read: read later
    assert counts.df.get("tank", 1) == 1  # read as 0: 1 now, or read again later
    assert counts.pending_df == Counter({"kelvik": 1, "frigate": 1, "tank": 1})
    assert counts.documents == 8
    counts.add(2, ("kelvik",))  # every term read: the one pass
    assert counts.df["kelvik"] == 5


def test_a_rolled_back_article_is_not_counted(storage: Storage) -> None:
    store(storage, "a", FRIGATE)
    article = new_article(feed_ids(storage, WIRE)[0], "b", terms=CONVOY)
    with pytest.raises(RuntimeError), storage.transaction():
        article_id = storage.add_article(article, NEW, "story-b")
        storage.count_document(article_id, CONVOY)
        assert storage.corpus_frequencies(["convoy"]) == (2, {"convoy": 1})
        raise RuntimeError("the feed failed half way")
    assert storage.corpus_frequencies(["convoy", "kelvik"]) == (1, {"kelvik": 1})
    # the rowid of the rolled-back article is given to the next one: counted once
    store(storage, "c", CONVOY)
    storage.flush_frequencies()
    assert written(storage) == (2, {"frigate": 1, "kelvik": 2, "launched": 1, "convoy": 1})


def test_articles_a_crash_left_uncounted_are_counted_by_the_next_process(tmp_path: Path) -> None:
    first = Storage.open(tmp_path / "a.db")
    store(first, "a", FRIGATE)
    store(first, "b", CONVOY)
    first.close()  # killed before its counts were written
    second = Storage.open(tmp_path / "a.db")
    try:
        assert written(second) == (0, {})
        assert count_uncounted(second) == 2
        assert count_uncounted(second) == 0  # already counted in memory
        second.flush_frequencies()
        assert written(second) == (2, {"frigate": 1, "kelvik": 2, "launched": 1, "convoy": 1})
    finally:
        second.close()


def test_another_connections_writes_are_seen(tmp_path: Path) -> None:
    mine = Storage.open(tmp_path / "a.db")
    other = Storage.open(tmp_path / "a.db")
    try:
        store(mine, "a", FRIGATE)
        mine.flush_frequencies()
        assert mine.corpus_frequencies(["kelvik"]) == (1, {"kelvik": 1})
        with other.transaction():  # a prune, say, on its own connection
            other.uncount_documents({"kelvik": 1}, 1)
        assert mine.corpus_frequencies(["kelvik"]) == (0, {})
    finally:
        mine.close()
        other.close()


def test_an_article_deleted_before_the_flush_is_left_out(tmp_path: Path) -> None:
    mine = Storage.open(tmp_path / "a.db")
    other = Storage.open(tmp_path / "a.db")
    try:
        store(mine, "a", FRIGATE)
        kept = store(mine, "b", CONVOY)
        with other.transaction():
            other.delete_stories(["story-a"])
        assert mine.flush_frequencies() == 1
        assert written(mine) == (1, {"kelvik": 1, "convoy": 1})
        assert [row["id"] for row in mine.story_member_terms("story-b")] == [kept]
    finally:
        mine.close()
        other.close()


def test_a_flush_after_a_deletion_leaves_an_article_without_stored_terms_uncounted(
    tmp_path: Path,
) -> None:
    # The survivors of a flush that finds deleted articles are counted from their stored
    # terms; one stored without them waits for the next refresh, which computes them.
    mine = Storage.open(tmp_path / "a.db")
    other = Storage.open(tmp_path / "a.db")
    try:
        store(mine, "a", FRIGATE)
        store(mine, "b", CONVOY)
        bare = store(mine, "c", FRIGATE)
        mine.db.execute("UPDATE articles SET terms = NULL WHERE id = ?", [bare])
        with other.transaction():
            other.delete_stories(["story-a"])
        assert mine.flush_frequencies() == 1
        assert written(mine) == (1, {"kelvik": 1, "convoy": 1})
        assert [row["id"] for row in mine.uncounted_articles()] == [bare]
        assert count_uncounted(mine) == 1  # its terms computed from its title and text
        mine.flush_frequencies()
        documents, df = written(mine)
        assert documents == 2 and df["convoy"] == 1 and df["kelvik"] >= 1
        assert mine.uncounted_articles() == [] and mine.pending_counts() == 0
    finally:
        mine.close()
        other.close()


@pytest.mark.parametrize("compress", [True, False])
def test_stored_terms_round_trip_exactly(compress: bool) -> None:
    terms = {"frigate": 1.0 / 3.0, "kelvik’s": 2.5e-17, "f-35": 1e300, "année": 0.1}
    assert unpack_terms(pack_terms(terms, compress=compress)) == terms
    assert list(unpack_terms(pack_terms(terms, compress=compress))) == list(terms)
    assert unpack_terms(pack_terms({}, compress=compress)) == {}
    names, weights = unpack_terms_apart(pack_terms(terms, compress=compress))
    assert (names, list(weights)) == (list(terms), list(terms.values()))
    assert unpack_terms_apart(pack_terms({}, compress=compress)) == ([], array("d"))


def test_an_article_is_stored_with_the_terms_its_worker_packed(tmp_path: Path) -> None:
    # Issue 18: the extraction worker packs the terms; the storing process stores them.
    features = text_features("Kelvik navy orders frigates", "Halvern Yards will build them. " * 9)
    assert features.packed_terms is not None
    assert unpack_terms(features.packed_terms) == features.terms
    storage = Storage.open(tmp_path / "packed.db")
    try:
        article_id = store(storage, "a", features.terms, packed_terms=features.packed_terms)
        (stored,) = storage.db.execute("SELECT terms FROM articles WHERE id = ?", [article_id])
        assert stored[0] == features.packed_terms
    finally:
        storage.close()


def test_a_full_cache_is_read_afresh_with_the_same_counts(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aggregator.storage.frequencies.MAX_CACHED_TERMS", 2)
    store(storage, "a", FRIGATE)
    storage.flush_frequencies()
    store(storage, "b", CONVOY)  # counted in memory only
    for _ in range(2):  # the second call finds the cache full and reads it again
        assert storage.corpus_frequencies(["kelvik", "convoy", "frigate"]) == (
            2,
            {"kelvik": 2, "convoy": 1, "frigate": 1},
        )
