"""Refit the weights of figures in story placement (clusterer.FIGURE_*) on ECB+ train.

Run by hand (not a test): ``python -m bench.cluster_fit [--seeds 2]``.

The train topics of ../shared/eval/ecbplus-dev are fed in shuffled orders through the
real storage and clusterer code, as in bench/cluster_eval.py, except that each article
is put into the story of its labelled event (teacher forcing). So every candidate story
the inverted index finds for an article is a labelled example: is it the article's
event or not? A logistic regression (numpy, Newton's method, a small L2 penalty on the
standardised features) over ``clusterer.relatedness_features`` (text cosine, figures
cosine, both quote figures) is fitted on them and printed in cosine units, i.e. divided
by the text weight: that is FIGURE_WEIGHT and FIGURE_CONFLICT, and the text cosine at
which the model's log-odds are -1 (the join threshold) and +2 (the merge threshold).
Those two levels were picked by a small grid on the train topics only; check any change
with ``python -m bench.cluster_eval``. The dev topics are never read here.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from aggregator.cluster import duplicates
from aggregator.cluster import events as clusterer
from aggregator.config import Settings
from aggregator.models import Assignment
from aggregator.pipeline.stories import candidate_profiles, grow_profile
from bench.cluster_eval import FEED, START, load_docs, make_article, open_storage

FEATURES = ("text cosine", "figures cosine", "both quote figures")
JOIN_LOGIT, MERGE_LOGIT = -1.0, 2.0


def collect(docs: Sequence[dict[str, Any]], seed: int) -> tuple[list[tuple[float, ...]], list[int]]:
    """Features and labels of every (article, candidate story) pair in one order."""
    window = Settings().clustering
    order = list(docs)
    random.Random(seed).shuffle(order)
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    story_of: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as directory:
        storage = open_storage(directory)
        for index, doc in enumerate(order):
            moment = START + timedelta(minutes=index)
            article = make_article(storage, doc["doc_id"], doc["title"], doc["text"], moment)
            with storage.transaction():
                terms = clusterer.event_terms(article.title, article.text)
                storage.count_document(terms)
                documents, df = storage.corpus_frequencies(terms)
                stats = clusterer.term_stats(terms, df, documents)
                vector = stats.vector
                candidates = storage.open_story_candidates(
                    clusterer.query_terms(vector, df, documents),
                    since=moment - window.window,
                    limit=window.candidates,
                )
                profiles, idf_of = candidate_profiles(storage, candidates, stats)
                figures = clusterer.article_figures(vector)
                gold = story_of.get(doc["subtopic"])
                for story, profile in profiles.items():
                    rows.append(clusterer.relatedness_features(vector, figures, profile, idf_of))
                    labels.append(int(story == gold))
                new_id = duplicates.new_story_id(FEED, doc["doc_id"])
                method = clusterer.RELATED if gold else "new"
                storage.add_article(article, Assignment(gold, method), new_id)
                story_of[doc["subtopic"]] = gold or new_id
                grow_profile(storage, gold or new_id, clusterer.normalized(terms), df, documents)
        storage.close()
    return rows, labels


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method; returns (weights, bias) on
    the raw features (standardised inside so the penalty treats them alike)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = np.diag([l2] * x.shape[1] + [0.0])  # the bias is not penalised
    w = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + penalty @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    weights = w[:-1] / scale
    return weights, float(w[-1] - (w[:-1] * mean / scale).sum())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="shuffled orders pooled")
    args = parser.parse_args(argv)
    train = [doc for doc in load_docs() if doc["split"] == "train"]
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    for seed in range(args.seeds):
        more_rows, more_labels = collect(train, seed)
        rows += more_rows
        labels += more_labels
    weights, bias = fit_logistic(np.array(rows), np.array(labels, dtype=float))
    print(f"{len(labels)} pairs, {sum(labels)} of the same event")
    for name, weight in zip(FEATURES, weights, strict=True):
        print(f"  {name:<20} {weight:8.3f}")
    print(f"  {'bias':<20} {bias:8.3f}")
    text = weights[0]
    print("in cosine units:")
    print(f"  FIGURE_WEIGHT   = {weights[1] / text:.3f}")
    print(f"  FIGURE_CONFLICT = {-weights[2] / text:.3f}")
    print(f"  join_threshold  = {(JOIN_LOGIT - bias) / text:.3f}  (log-odds {JOIN_LOGIT:+})")
    print(f"  merge_threshold = {(MERGE_LOGIT - bias) / text:.3f}  (log-odds {MERGE_LOGIT:+})")


if __name__ == "__main__":
    main()
