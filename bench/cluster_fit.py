"""Fit story clustering's few parameters on the train sets, and only on them.

Run by hand (not a test): ``python -m bench.cluster_fit [--grid full]``.

What is fitted: the term weights of ``aggregator.clusterer`` (BODY_WEIGHT, LEAD_WEIGHT,
CAPITALISED_BOOST, FIGURE_BOOST, PRIOR_DOCUMENTS) and the refinement's average-link cut
(``clustering.merge_threshold``). On what: ECB+ train and GVC train
(bench/cluster_sets.py), each one stream. Why this is enough: after the last refresh
of a stream the refinement has clustered every open report at once with the stream's
final document frequencies, so the stream's final stories are the batch average link
over the product's own term vectors, whatever the order of arrival
(``python -m bench.cluster_eval`` checks it end to end). So each setting is scored
here by ``cluster_refine``'s own edges and average link over each whole train set.

The objective is the mean B-cubed F1 of the two train sets, averaged over the cut and
its neighbours on the grid (a cut that only works on a knife edge does not generalise
to sets it was not fitted on). Dev and test sets are never read here.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aggregator.cluster import events as clusterer
from aggregator.cluster import refine as cluster_refine
from bench.cluster_sets import Doc, bcubed, load_set

TRAIN = ("ecb-train", "gvc-train")
CUTS = (0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20)
GRIDS: dict[str, dict[str, Sequence[float]]] = {
    "threshold": {},
    "full": {
        "BODY_WEIGHT": (0.5, 1.0),
        "LEAD_WEIGHT": (1.0, 1.5),
        "CAPITALISED_BOOST": (2.0, 3.0),
        "FIGURE_BOOST": (2.0, 3.0),
        "PRIOR_DOCUMENTS": (20,),
    },
    "prior": {"PRIOR_DOCUMENTS": (0, 10, 20, 50), "FIGURE_BOOST": (2.0, 3.0)},
}


@contextmanager
def constants(values: dict[str, float]) -> Iterator[None]:
    """Set clusterer constants for a while (the bench only; never in the service)."""
    old = {name: getattr(clusterer, name) for name in values}
    for name, value in values.items():
        setattr(clusterer, name, value)
    clusterer.background_share.cache_clear()
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(clusterer, name, value)
        clusterer.background_share.cache_clear()


def scores(docs: Sequence[Doc], cuts: Sequence[float]) -> list[float]:
    """B-cubed F1 of the refinement's stories at each cut, the set as one stream."""
    terms = [clusterer.event_terms(doc.title, doc.text) for doc in docs]
    df = Counter(term for vector in terms for term in vector)
    vectors = cluster_refine.unit_vectors(terms, df, len(docs))
    edges = cluster_refine.similarity_edges(vectors)
    gold = {doc.doc_id: doc.gold for doc in docs}
    found = []
    for cut in cuts:
        groups = cluster_refine.average_link(len(docs), edges, cut)
        predicted = {docs[i].doc_id: str(n) for n, group in enumerate(groups) for i in group}
        found.append(bcubed(predicted, gold)[2])
    return found


def fit(grid: dict[str, Sequence[float]], cuts: Sequence[float]) -> list[dict[str, Any]]:
    """Every setting of ``grid`` with its best cut, best first."""
    sets = {name: load_set(name) for name in TRAIN}
    rows = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        with constants(setting):
            per_set = {name: scores(docs, cuts) for name, docs in sets.items()}
        mean = [statistics.fmean(per_set[name][k] for name in TRAIN) for k in range(len(cuts))]
        smooth = [statistics.fmean(mean[max(0, k - 1) : k + 2]) for k in range(len(cuts))]
        best = max(range(len(cuts)), key=lambda k: (smooth[k], mean[k]))
        rows.append({"setting": setting, "cut": cuts[best], "smooth": smooth[best],
                     "mean": mean[best], **{name: per_set[name][best] for name in TRAIN},
                     "curve": mean})  # fmt: skip
        print(_line(rows[-1]), flush=True)
    return sorted(rows, key=lambda row: -row["smooth"])


def _line(row: dict[str, Any]) -> str:
    setting = " ".join(f"{name}={value:g}" for name, value in row["setting"].items())
    return (
        f"{row['smooth']:.4f} smoothed, {row['mean']:.4f} at cut {row['cut']:.2f}"
        f" ({', '.join(f'{name} {row[name]:.3f}' for name in TRAIN)}) {setting or 'defaults'}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="threshold")
    args = parser.parse_args(argv)
    print(f"train sets {', '.join(TRAIN)}; cuts {', '.join(f'{cut:.2f}' for cut in CUTS)}")
    rows = fit(GRIDS[args.grid], CUTS)
    print("best (smoothed mean F1 of the train sets):")
    for row in rows[:5]:
        print(" ", _line(row))
    print("  mean F1 by cut for the best:", " ".join(f"{f:.3f}" for f in rows[0]["curve"]))


if __name__ == "__main__":
    main()
