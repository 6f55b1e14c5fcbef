"""Refinement of the open window: batch average link over the stream's own weights.

Online placement decides for one article at a time and can never take a decision back;
after each refresh, the reports of the open stories are clustered again all at once:

1. every report is a unit vector of its terms weighted by the stream's document
   frequencies (``events.idf_table``); copies of one article (same URL, guid or
   near-duplicate body) are one unit, and so is what an admin merged;
2. ``similarity_edges``: the cosine of every pair of reports that share one of their
   distinctive terms (an inverted index, as for online candidates; pairs sharing none
   count as 0), kept when at least ``floor``;
3. ``average_link``: agglomerative clustering that merges the two groups whose reports
   are most similar on average, while that average is at least the threshold. A group
   joins another only on the evidence of all their pairs, so no single article can
   chain two events together (single link's failure), and a report that fits a story
   only through one member stays out. Pairs an admin split apart never merge.

Reconciling the result with the stories as they stand (ids, aliases, moves) is
``reconcile.py``. Pure functions over plain data, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from itertools import filterfalse
from operator import itemgetter

import numpy as np

from aggregator.cluster import events as clusterer

# Terms of a report used to find the reports it is compared with: its heaviest terms
# found in at most max(KEY_MIN_DF, KEY_DF_SHARE x reports) reports (the rest are
# compared only through them: a pair sharing no distinctive term scores 0).
KEY_TERMS = 20
KEY_MIN_DF = 50
KEY_DF_SHARE = 0.01
EDGE_FLOOR = 0.05  # pair similarities below this count as 0 (they barely move an average)
CANDIDATE_FLOOR = 0.02  # a pair whose distinctive terms give less is not worth a cosine


class SparseRows:
    """Unit vectors held as arrays (term ids, weights) over one vocabulary, in the order
    added: a window of thousands of reports in a tenth of the memory of a dict each.
    ``vector(i)`` gives row i back as the dict it was made from (same order, same
    floats)."""

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []
        self._names: list[str] = []
        self._dense = np.zeros(0)  # one weight per term; all zeros between calls
        self._held_mask = np.zeros(0, dtype=bool)  # all False between calls
        self._ranks = np.zeros(0, dtype=np.intp)  # each term's place in code-point order

    @classmethod
    def of(cls, vectors: Iterable[Mapping[str, float]]) -> SparseRows:
        rows = cls()
        for vector in vectors:
            rows.add(vector)
        return rows

    def add(self, vector: Mapping[str, float]) -> None:
        self.rows.append(_row(vector, vector.values(), self.vocabulary))

    def add_all_weighed(
        self,
        reports: Sequence[tuple[Sequence[str], Sequence[float]]],
        idf_of: Mapping[str, float],
    ) -> None:
        """Add ``clusterer.weigh(terms, idf_of)`` of each of ``reports``, given as
        (terms, weights) in the same order, every term in ``idf_of``: the refinement
        weighs every report of the window, a few hundred terms each. The same floats
        (products, ``clusterer.vector_norm``, quotients), with one lookup per term in a
        dict of these reports' terms instead of three in the window's big ones (its
        vocabulary and the IDF), and no dict per report: those were most of the time."""
        names = list(idf_of)
        ids = _term_ids(names, self.vocabulary)
        idf = np.fromiter(idf_of.values(), dtype=float, count=len(names))
        position = dict(zip(names, range(len(names)), strict=True))
        for terms, frequencies in reports:
            at = np.fromiter(map(position.__getitem__, terms), dtype=np.intp, count=len(terms))
            weights = np.asarray(frequencies, dtype=float) * idf[at]
            norm = clusterer.vector_norm(weights.tolist())
            self.rows.append((ids[at], weights / norm if norm else weights))

    def __len__(self) -> int:
        return len(self.rows)

    def vector(self, index: int) -> dict[str, float]:
        terms, weights = self.rows[index]
        names = self._term_names()
        pairs = zip(terms.tolist(), weights.tolist(), strict=True)
        return {names[term]: weight for term, weight in pairs}

    def mean_dot(self, index: int, others: Sequence[int]) -> float:
        """The mean of row ``index``'s dot product with each of ``others`` (at least
        one): the same floats as summing ``weight * theirs.get(term, 0.0)`` over
        ``vector(index)`` for each, the products made on arrays."""
        terms, weights = self.rows[index]
        dense = self._zeros()
        total = 0.0
        for other in others:
            their_terms, their_weights = self.rows[other]
            dense[their_terms] = their_weights
            total += sum((weights * dense[terms]).tolist())  # left to right, as one by one
            dense[their_terms] = 0.0
        return total / len(others)

    def summed(self, indices: Sequence[int]) -> dict[str, float]:
        """``clusterer.grown_centroid`` folded over rows ``indices`` in order from an
        empty centroid: the same terms, floats and order, with each step's sums and its
        pruning to the STORY_PROFILE_TERMS heaviest (ties: the term first in code-point
        order) made on arrays. The refinement rebuilds every story it changed so."""
        keep = clusterer.STORY_PROFILE_TERMS
        sums, held_mask, ranks = self._zeros(), self._held(), self._term_ranks()
        held = np.empty(0, dtype=np.int32)  # the terms of the sum so far, in no order
        for index in indices:
            terms, weights = self.rows[index]
            sums[terms] += weights  # a row's terms are distinct; a pruned term is at 0.0
            new = terms[~held_mask[terms]]
            held_mask[new] = True
            held = np.concatenate((held, new))
            if len(held) > keep:
                order = np.lexsort((ranks[held], -sums[held]))
                dropped = held[order[keep:]]
                sums[dropped] = 0.0
                held_mask[dropped] = False
                held = held[order[:keep]]
        ranked = held[np.lexsort((ranks[held], -sums[held]))]
        names = self._term_names()
        ranked_names = map(names.__getitem__, ranked.tolist())
        summed = dict(zip(ranked_names, sums[ranked].tolist(), strict=True))
        sums[held] = 0.0
        held_mask[held] = False
        return summed

    def _term_names(self) -> list[str]:
        if len(self._names) < len(self.vocabulary):
            self._names = list(self.vocabulary)  # ids are given in insertion order
        return self._names

    def _zeros(self) -> np.ndarray:
        if len(self._dense) < len(self.vocabulary):
            self._dense = np.zeros(len(self.vocabulary))
        return self._dense

    def _held(self) -> np.ndarray:
        if len(self._held_mask) < len(self.vocabulary):
            self._held_mask = np.zeros(len(self.vocabulary), dtype=bool)
        return self._held_mask

    def _term_ranks(self) -> np.ndarray:
        if len(self._ranks) < len(self.vocabulary):
            names = self._term_names()
            order = sorted(range(len(names)), key=names.__getitem__)
            self._ranks = np.empty(len(names), dtype=np.intp)
            self._ranks[order] = np.arange(len(names))
        return self._ranks


def similarity_edges(
    vectors: Sequence[Mapping[str, float]] | SparseRows, *, floor: float = EDGE_FLOOR
) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for i < j, every pair of ``vectors`` (unit length) whose cosine is
    at least ``floor`` and whose distinctive terms already show it likely
    (``_candidate_pairs``); the cosine itself is exact."""
    return list(iter_similarity_edges(vectors, floor=floor))


def iter_similarity_edges(
    vectors: Sequence[Mapping[str, float]] | SparseRows, *, floor: float = EDGE_FLOOR
) -> Iterator[tuple[int, int, float]]:
    """``similarity_edges`` one at a time, for a caller that reads them once: a large
    window has near a million, some 35 MB as a list of tuples."""
    sparse = vectors if isinstance(vectors, SparseRows) else SparseRows.of(vectors)
    rows, size = sparse.rows, len(sparse.vocabulary)
    keys = _key_terms(rows, size)
    later_of = _candidate_pairs(keys, _Postings(rows, keys, size), len(rows))
    del keys
    scratch = np.zeros(size)
    for i, later in later_of.items():
        terms, weights = rows[i]
        scratch[terms] = weights
        partner_rows = [rows[j] for j in later.tolist()]
        lengths = np.fromiter(map(len, map(itemgetter(0), partner_rows)), dtype=np.intp)
        # one gather and one product over the partners' rows put end to end, not two
        # numpy calls per partner (the same products, in the same order)
        partner_terms = np.concatenate([row[0] for row in partner_rows])
        partner_weights = np.concatenate([row[1] for row in partner_rows])
        gathered = scratch[partner_terms] * partner_weights
        sims = np.add.reduceat(gathered, np.concatenate(([0], np.cumsum(lengths)[:-1])))
        scratch[terms] = 0.0
        keep = sims >= floor
        partners, kept = later[keep].tolist(), sims[keep].tolist()
        yield from zip([i] * len(kept), partners, kept, strict=True)


Rows = Sequence[tuple[np.ndarray, np.ndarray]]


def _key_terms(rows: Rows, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each row's distinctive terms and their weights: its KEY_TERMS heaviest terms
    found in at most max(KEY_MIN_DF, KEY_DF_SHARE x rows) rows."""
    if not rows:
        return []
    df = np.bincount(np.concatenate([terms for terms, _ in rows]), minlength=size)
    most = max(KEY_MIN_DF, int(len(rows) * KEY_DF_SHARE))
    keys = []
    for terms, weights in rows:
        order = np.argsort(-weights, kind="stable")
        ranked, ranked_weights = terms[order], weights[order]
        rare = df[ranked] <= most
        keys.append((ranked[rare][:KEY_TERMS], ranked_weights[rare][:KEY_TERMS]))
    return keys


class _Postings:
    """For each key term (distinctive for some row), the rows holding it (ascending)
    and its weight in each: two flat arrays cut by ``bounds``, not a pair of arrays per
    term. Only key terms are looked up, so only their entries are gathered: a window of
    20,000 reports has ten million (term, row) entries, and sorting all of them at once
    took some 48 bytes an entry, half a GB."""

    def __init__(self, rows: Rows, keys: Rows, size: int) -> None:
        wanted = np.zeros(size, dtype=bool)
        for key_terms, _ in keys:
            wanted[key_terms] = True
        held = [wanted[row_terms] for row_terms, _ in rows]
        terms = np.concatenate([row[0][mask] for row, mask in zip(rows, held, strict=True)])
        weights = np.concatenate([row[1][mask] for row, mask in zip(rows, held, strict=True)])
        owners = np.repeat(np.arange(len(rows)), [int(mask.sum()) for mask in held])
        order = np.argsort(terms, kind="stable")
        self.bounds = np.searchsorted(terms[order], np.arange(size + 1)).tolist()
        self.owners, self.weights = owners[order], weights[order]

    def holders(self, term: int) -> np.ndarray:
        return self.owners[self.bounds[term] : self.bounds[term + 1]]

    def weights_of(self, term: int) -> np.ndarray:
        return self.weights[self.bounds[term] : self.bounds[term + 1]]


def _candidate_pairs(keys: Rows, postings: _Postings, count: int) -> dict[int, np.ndarray]:
    """For each row i, the rows j > i worth an exact cosine: those whose dot product
    with row i over row i's distinctive terms (``_key_terms``), or row i's with theirs,
    reaches CANDIDATE_FLOOR. Found from both sides, so the result does not depend on
    the order of rows; a cosine is computed only where a distinctive term makes it
    likely."""
    codes = []
    for i, (key_terms, key_weights) in enumerate(keys):
        if not len(key_terms):
            continue
        terms = key_terms.tolist()
        holders = np.concatenate([postings.holders(t) for t in terms])
        products = np.concatenate(
            [
                postings.weights_of(t) * weight
                for t, weight in zip(terms, key_weights.tolist(), strict=True)
            ]
        )
        partners, slot = np.unique(holders, return_inverse=True)
        partial = np.bincount(slot, weights=products)
        chosen = partners[(partial >= CANDIDATE_FLOOR) & (partners != i)]
        codes.append(np.minimum(chosen, i) * count + np.maximum(chosen, i))
    unique = np.unique(np.concatenate(codes)) if codes else np.empty(0, dtype=np.int64)
    if not len(unique):
        return {}
    firsts, seconds = unique // count, unique % count
    bounds = np.flatnonzero(np.diff(firsts)) + 1
    return {
        int(first[0]): second
        for first, second in zip(np.split(firsts, bounds), np.split(seconds, bounds), strict=True)
    }


def _row(
    terms: Collection[str], weights: Iterable[float], vocabulary: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The terms' ids (new terms numbered in the order met) and their weights (in the
    same order). C-level passes only: this runs for every term of every report in the
    window."""
    return _term_ids(terms, vocabulary), np.fromiter(weights, dtype=float, count=len(terms))


def _term_ids(terms: Collection[str], vocabulary: dict[str, int]) -> np.ndarray:
    """The terms' ids in ``vocabulary``, new terms numbered in the order given. Ids are
    32-bit: a window holds millions of them."""
    new = list(filterfalse(vocabulary.__contains__, terms))
    vocabulary.update(zip(new, range(len(vocabulary), len(vocabulary) + len(new)), strict=True))
    return np.fromiter(map(vocabulary.__getitem__, terms), dtype=np.int32, count=len(terms))


def average_link(
    count: int,
    edges: Iterable[tuple[int, int, float]],
    threshold: float,
    *,
    together: Iterable[Sequence[int]] = (),
    cannot_link: Iterable[tuple[int, int]] = (),
) -> list[list[int]]:
    """Average-link agglomerative clustering of ``count`` items over sparse similarities
    (a missing pair counts as 0), stopped when no two groups average ``threshold``.
    Each of ``together`` starts as one group (an admin merged them); groups holding
    the two ends of a ``cannot_link`` pair never merge. Returns the groups, each
    sorted, ordered by their first item."""
    sums: list[dict[int, float]] = [{} for _ in range(count)]
    for i, j, sim in edges:
        if i != j:
            sums[i][j] = sums[i].get(j, 0.0) + sim
            sums[j][i] = sums[i][j]
    size = [1] * count
    members = [[i] for i in range(count)]
    version = [0] * count
    apart = _apart_sets(count, cannot_link)
    for items in together:  # disjoint sets of items
        for item in items[1:]:
            _merge(items[0], item, sums, size, members, apart)
    heap = [
        (-total / (size[i] * size[j]), i, j, 0, 0)
        for i in range(count)
        for j, total in sums[i].items()
        if i < j
    ]
    heapq.heapify(heap)
    while heap:
        negative, a, b, seen_a, seen_b = heapq.heappop(heap)
        if -negative < threshold:
            break
        if version[a] != seen_a or version[b] != seen_b or not size[a] or not size[b]:
            continue  # stale: a or b has merged since
        if apart[a] and not apart[a].isdisjoint(members[b]):
            continue
        a, b = (a, b) if len(sums[a]) >= len(sums[b]) else (b, a)
        _merge(a, b, sums, size, members, apart)
        version[a] += 1
        for c, total in sums[a].items():
            low, high = min(a, c), max(a, c)
            heapq.heappush(
                heap, (-total / (size[a] * size[c]), low, high, version[low], version[high])
            )
    return sorted((sorted(group) for group in members if group), key=lambda group: group[0])


def _apart_sets(count: int, pairs: Iterable[tuple[int, int]]) -> list[set[int]]:
    apart: list[set[int]] = [set() for _ in range(count)]
    for i, j in pairs:
        apart[i].add(j)
        apart[j].add(i)
    return apart


def _merge(
    a: int,
    b: int,
    sums: list[dict[int, float]],
    size: list[int],
    members: list[list[int]],
    apart: list[set[int]],
) -> None:
    """Fold group b into group a: the sums of similarities to every other group add up."""
    for c, total in sums[b].items():
        del sums[c][b]
        if c != a:
            sums[a][c] = sums[a].get(c, 0.0) + total
            sums[c][a] = sums[a][c]
    sums[a].pop(b, None)
    sums[b] = {}
    size[a] += size[b]
    size[b] = 0
    members[a] += members[b]
    members[b] = []
    apart[a] |= apart[b]
    apart[b] = set()


def unit_vectors(
    term_vectors: Sequence[Mapping[str, float]], df: Mapping[str, int], documents: int
) -> list[dict[str, float]]:
    """Each report's terms weighted by the stream's document frequencies, unit length."""
    terms = {term for vector in term_vectors for term in vector}
    idf_of = clusterer.idf_table(terms, df, documents)
    return [clusterer.weigh(vector, idf_of) for vector in term_vectors]
