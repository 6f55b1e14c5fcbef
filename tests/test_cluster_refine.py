"""The refinement's pure parts (issue 15): similarity edges, average link with admin
constraints, and the reconciliation that keeps story ids stable."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from aggregator.cluster import events as clusterer
from aggregator.cluster import refine as cluster_refine
from aggregator.cluster.reconcile import Move, reconcile


def unit(vector: dict[str, float]) -> dict[str, float]:
    norm = sum(value * value for value in vector.values()) ** 0.5
    return {term: value / norm for term, value in vector.items()}


def brute_force(vectors: list[dict[str, float]], floor: float) -> dict[tuple[int, int], float]:
    pairs = {}
    for i, j in itertools.combinations(range(len(vectors)), 2):
        sim = sum(value * vectors[j].get(term, 0.0) for term, value in vectors[i].items())
        if sim >= floor:
            pairs[(i, j)] = sim
    return pairs


def test_similarity_edges_are_the_exact_cosines_of_pairs_sharing_a_distinctive_term(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cluster_refine, "CANDIDATE_FLOOR", 0.0)
    rng = random.Random(4)
    vocabulary = [f"w{n}" for n in range(40)]
    vectors = [unit({term: rng.random() for term in rng.sample(vocabulary, 6)}) for _ in range(30)]
    edges = cluster_refine.similarity_edges(vectors, floor=0.05)
    found = {(i, j): sim for i, j, sim in edges}
    assert found.keys() == brute_force(vectors, 0.05).keys()
    assert all(
        sim == pytest.approx(brute_force(vectors, 0.05)[pair]) for pair, sim in found.items()
    )
    # the same pairs whatever the order of the vectors
    order = list(range(len(vectors)))
    rng.shuffle(order)
    shuffled = cluster_refine.similarity_edges([vectors[k] for k in order], floor=0.05)
    assert {tuple(sorted((order[i], order[j]))) for i, j, _ in shuffled} == found.keys()


def test_reports_weighed_together_are_the_floats_weighed_one_at_a_time() -> None:
    # The refinement weighs a chunk of reports at once (arrays, one lookup a term):
    # every row is exactly clusterer.weigh's vector, and a report of zero weight (all
    # its terms in every document) stays as it is, as _unit_weights leaves it.
    rng = random.Random(11)
    words = [f"w{n}" for n in range(300)]
    reports = [
        {word: rng.choice([0.5, 1.0, 1.5, 2.0, 3.7]) for word in rng.sample(words, 40)}
        for _ in range(25)
    ]
    reports.append({"w1": 1.0, "w2": 2.0})
    idf_of = {word: rng.uniform(0.0, 9.0) for word in words}
    idf_of["w1"] = idf_of["w2"] = 0.0
    together = cluster_refine.SparseRows()
    together.add({"w5": 1.0})  # a vocabulary begun earlier
    together.add_all_weighed([(list(report), list(report.values())) for report in reports], idf_of)
    one_at_a_time = cluster_refine.SparseRows.of(
        [{"w5": 1.0}, *(clusterer.weigh(report, idf_of) for report in reports)]
    )
    for index in range(len(reports) + 1):
        assert list(together.vector(index).items()) == list(one_at_a_time.vector(index).items())
    assert together.vector(len(reports)) == {"w1": 0.0, "w2": 0.0}
    assert together.vector(1) == clusterer.weigh(reports[0], idf_of)


def test_a_story_summed_on_arrays_is_the_centroid_grown_one_report_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The refinement rebuilds a changed story from its reports: the same terms, order
    # and floats as grown_centroid folded over them, its pruning to the heaviest terms
    # at every step included (a term pruned early and met again starts from 0), with
    # ties broken by the term (weights from a few values, so ties are common).
    monkeypatch.setattr(clusterer, "STORY_PROFILE_TERMS", 12)
    rng = random.Random(7)
    words = [f"w{n}" for n in range(60)] + ["Émile", "zulu", "ägir", "a", "b10"]
    vectors = [
        {
            word: rng.choice([0.1, 0.2, 0.25, 0.3, 0.5])
            for word in rng.sample(words, rng.randint(1, 30))
        }
        for _ in range(40)
    ]
    rows = cluster_refine.SparseRows.of(vectors)
    for group in ([0], [3, 1], list(range(40)), [39, 5, 5, 2], []):
        grown: dict[str, float] = {}
        for index in group:
            grown = clusterer.grown_centroid(grown, vectors[index])
        assert list(rows.summed(group).items()) == list(grown.items())
    assert not rows._dense.any() and not rows._held_mask.any()  # cleared for the next story


def test_a_reports_fit_on_arrays_is_the_fit_summed_term_by_term() -> None:
    rng = random.Random(3)
    words = [f"w{n}" for n in range(50)]
    vectors = [
        unit({word: rng.random() for word in rng.sample(words, rng.randint(1, 25))})
        for _ in range(12)
    ]
    rows = cluster_refine.SparseRows.of(vectors)
    for unit_index, others in ((0, [1]), (4, [0, 2, 9, 11]), (7, list(range(7)))):
        mine = vectors[unit_index]
        total = 0.0
        for other in others:
            total += sum(w * vectors[other].get(term, 0.0) for term, w in mine.items())
        assert rows.mean_dot(unit_index, others) == total / len(others)
    assert not rows._dense.any()


def test_only_the_distinctive_terms_entries_are_gathered_to_find_pairs() -> None:
    # "navy" is in all sixty reports (not distinctive: in more than KEY_MIN_DF); each
    # report's own name is. The postings hold the names' entries, not navy's sixty.
    vectors = [unit({"navy": 1.0, f"ship{n}": 2.0}) for n in range(60)]
    rows = cluster_refine.SparseRows.of(vectors)
    keys = cluster_refine._key_terms(rows.rows, len(rows.vocabulary))
    postings = cluster_refine._Postings(rows.rows, keys, len(rows.vocabulary))
    assert len(postings.owners) == 60
    assert postings.holders(rows.vocabulary["ship7"]).tolist() == [7]
    assert postings.holders(rows.vocabulary["navy"]).tolist() == []


def test_average_link_does_not_chain_through_one_item() -> None:
    # Two tight pairs (0, 1) and (3, 4); item 2 is close to one member of each. Single
    # link would make one group of all five; average link keeps the events apart.
    edges = [(0, 1, 0.8), (3, 4, 0.8), (1, 2, 0.5), (2, 3, 0.5)]
    assert cluster_refine.average_link(5, edges, 0.3) == [[0, 1], [2], [3, 4]]
    # where item 2's average over a pair reaches the threshold it joins that pair, and
    # the two events still stay apart
    assert cluster_refine.average_link(5, edges, 0.25) in ([[0, 1, 2], [3, 4]], [[0, 1], [2, 3, 4]])


def test_average_link_merges_on_the_average_of_all_pairs() -> None:
    # Groups {0, 1} and {2, 3}: cross pairs 0.5, 0.5, 0.1, 0.0 average 0.275.
    edges = [(0, 1, 0.9), (2, 3, 0.9), (0, 2, 0.5), (1, 3, 0.5), (0, 3, 0.1)]
    assert cluster_refine.average_link(4, edges, 0.28) == [[0, 1], [2, 3]]
    assert cluster_refine.average_link(4, edges, 0.27) == [[0, 1, 2, 3]]


def test_average_link_keeps_admin_constraints() -> None:
    edges = [(0, 1, 0.9), (1, 2, 0.9), (0, 2, 0.9)]
    assert cluster_refine.average_link(3, edges, 0.5, cannot_link=[(0, 2)]) in (
        [[0, 1], [2]],
        [[0], [1, 2]],
    )
    assert cluster_refine.average_link(4, [], 0.5, together=[[1, 3]]) == [[0], [1, 3], [2]]


def test_a_story_keeps_its_id_when_most_of_its_reports_stay() -> None:
    # Story "a" holds units 0-3; the refinement splits unit 3 off: "a" stays with the
    # three, the part split off gets a new id.
    plan = reconcile(["a", "a", "a", "a"], [1, 1, 1, 1], [[0, 1, 2], [3]], {"a": "1"}, _new)
    assert plan.story_of == ("a", "a", "a", "new-3")
    assert plan.created == ("new-3",) and plan.aliases == {}
    assert plan.moves == (Move(3, "a", "new-3"),)


def test_merged_stories_keep_the_oldest_id_and_the_other_becomes_an_alias() -> None:
    plan = reconcile(
        ["b", "a", "a"], [1, 2, 1], [[0, 1, 2]], {"a": "2026-01", "b": "2026-02"}, _new
    )
    assert plan.story_of == ("a", "a", "a")
    assert plan.aliases == {"b": "a"} and plan.created == ()
    assert plan.moves == (Move(0, "b", "a"),)


def test_an_id_follows_the_most_articles_copies_included() -> None:
    # Unit 0 carries three copies: it outweighs units 1 and 2 together.
    plan = reconcile(["a", "a", "a"], [3, 1, 1], [[0], [1, 2]], {"a": "1"}, _new)
    assert plan.story_of == ("a", "new-1", "new-1")


def test_nothing_moves_when_the_refinement_agrees() -> None:
    plan = reconcile(["a", "a", "b"], [1, 1, 1], [[0, 1], [2]], {"a": "1", "b": "2"}, _new)
    assert plan.moves == () and plan.created == () and plan.aliases == {}


def _new(group: Sequence[int]) -> str:
    return f"new-{group[0]}"
