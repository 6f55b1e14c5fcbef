"""How well each pair signal tells one event from another of the same kind, on ECB+.

Run by hand (not a test): ``python -m bench.cluster_signals [--seeds 3] [--wordllama]``.

The hard decision in story clustering is not "climbing accident or tank contract" but
"this climbing accident or the other one": every ECB+ topic holds two events of one
kind. This bench isolates that decision from the cascades of online clustering: the
articles of each split are walked in shuffled orders, each is compared with every
event of its own topic seen so far (the labelled stories, built from the earlier
articles; teacher forcing), and each comparison is a labelled example, same event or
not. For each signal it prints the ROC AUC (the chance that a same-event pair outscores
a different-event pair) and the medians of both, per split; then, for each other
signal, the AUC on dev of a logistic regression over (our score, that signal) fitted
on train: how much the signal would add to the score we use.

Signals: ``score``, what clustering joins on (``clusterer.relatedness``: the text
cosine adjusted by the figures both quote); ``text cosine``; ``lead score``, the
article's title and lead alone (the lead test); ``containment``, the share of the
article's weight on terms the story has. ``--wordllama`` adds the cosine of static
embeddings (WordLlama's bundled 256-dimension model, mean of the story's members), if
the package is installed; it is not a dependency of the project. Document frequencies
come from the whole split, so the figures are a little kinder than online ones.
"""

from __future__ import annotations

import argparse
import bisect
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aggregator.cluster import events as clusterer
from aggregator.models import StoryProfile
from bench.cluster_eval import load_docs
from bench.cluster_fit import fit_logistic

Embedder = Callable[[list[str]], np.ndarray]


def profile_of(centroid: Mapping[str, float], idf_of: Mapping[str, float]) -> StoryProfile:
    figures = {term: weight for term, weight in centroid.items() if clusterer.is_figure(term)}
    return StoryProfile(dict(centroid), clusterer.centroid_norm(centroid, idf_of), figures)


def collect(
    docs: Sequence[dict[str, Any]], seeds: int, embed: Embedder | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(signal names, one row of signals per (article, earlier event of its topic), labels)."""
    terms = {doc["doc_id"]: clusterer.event_terms(doc["title"], doc["text"]) for doc in docs}
    df = Counter(term for vector in terms.values() for term in vector)
    idf_of = clusterer.idf_table(df, df, len(docs))
    vectors = {key: clusterer.weigh(vector, idf_of) for key, vector in terms.items()}
    leads = {
        doc["doc_id"]: clusterer.weigh(clusterer.lead_terms(doc["title"], doc["text"]), idf_of)
        for doc in docs
    }
    names = ["score", "text cosine", "lead score", "containment"]
    embeddings: dict[str, np.ndarray] = {}
    if embed is not None:
        names.append("static embedding")
        matrix = embed([doc["text"] for doc in docs])
        embeddings = {doc["doc_id"]: matrix[i] for i, doc in enumerate(docs)}
    rows, labels = [], []
    for seed in range(seeds):
        order = list(docs)
        random.Random(seed).shuffle(order)
        centroids: dict[str, dict[str, float]] = defaultdict(dict)
        summed: dict[str, np.ndarray] = {}
        for doc in order:
            key, vector = doc["doc_id"], vectors[doc["doc_id"]]
            figures = clusterer.article_figures(vector)
            lead = leads[key]
            for event, centroid in centroids.items():
                if event.split("_")[0] != str(doc["topic"]):  # subtopics are "35_ecb"...
                    continue
                profile = profile_of(centroid, idf_of)
                row = [
                    clusterer.relatedness(vector, figures, profile, idf_of),
                    clusterer.story_similarity(vector, profile, idf_of),
                    clusterer.relatedness(lead, clusterer.article_figures(lead), profile, idf_of),
                    sum(value * value for term, value in vector.items() if term in centroid),
                ]
                if embed is not None:
                    mean = summed[event]
                    row.append(float(embeddings[key] @ mean / (np.linalg.norm(mean) or 1.0)))
                rows.append(row)
                labels.append(event == doc["subtopic"])
            # as a story grows in clustering: the member's unit vector added, then pruned
            centroids[doc["subtopic"]] = clusterer.grown_centroid(
                centroids[doc["subtopic"]], clusterer.normalized(terms[key])
            )
            if embed is not None:
                summed[doc["subtopic"]] = summed.get(doc["subtopic"], 0) + embeddings[key]
    return names, np.array(rows), np.array(labels, dtype=bool)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC: the share of (same, different) pairs the scores order correctly."""
    different = sorted(scores[~labels])
    wins = 0.0
    for score in scores[labels]:
        below = bisect.bisect_left(different, score)
        wins += below + 0.5 * (bisect.bisect_right(different, score) - below)  # ties: half
    return wins / max(1, int(labels.sum()) * len(different))


def wordllama_embedder() -> Embedder:
    """WordLlama's bundled model, loaded without ever reaching for the network."""
    import shutil
    import tempfile

    import wordllama
    from wordllama import WordLlama

    # The wheel ships the tokenizer under tokenizers/ but looks for it under a cache
    # directory; hand it one, with downloads off.
    cache = Path(tempfile.mkdtemp()) / "tokenizers"
    cache.mkdir()
    for bundled in (Path(wordllama.__file__).parent / "tokenizers").glob("*.json"):
        shutil.copy(bundled, cache)
    model = WordLlama.load(cache_dir=cache.parent, disable_download=True)
    return lambda texts: np.asarray(model.embed(texts, norm=True))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="orders per split (default 3)")
    parser.add_argument(
        "--wordllama", action="store_true", help="add static embeddings (needs wordllama)"
    )
    args = parser.parse_args(argv)
    try:
        embed = wordllama_embedder() if args.wordllama else None
    except ImportError:
        parser.error("--wordllama needs the wordllama package (pip install wordllama)")
    docs = load_docs()
    data = {}
    for split in ("train", "dev"):
        subset = [doc for doc in docs if doc["split"] == split]
        data[split] = collect(subset, args.seeds, embed)
    names = data["train"][0]
    print(f"same-topic pairs, teacher-forced, {args.seeds} orders")
    print(f"{'signal':<18} {'split':<6} {'pairs':>6} {'AUC':>6} {'same':>6} {'other':>6}")
    for index, name in enumerate(names):
        for split, (_, rows, labels) in data.items():
            column = rows[:, index]
            print(
                f"{name:<18} {split:<6} {len(labels):>6} {auc(column, labels):>6.3f} "
                f"{statistics.median(column[labels]):>6.2f} "
                f"{statistics.median(column[~labels]):>6.2f}"
            )
    _, train_rows, train_labels = data["train"]
    _, dev_rows, dev_labels = data["dev"]
    print("score + one signal: logistic regression fitted on train, AUC on dev")
    print(f"  score alone{'':<14} {auc(dev_rows[:, 0], dev_labels):.3f}")
    for index, name in enumerate(names[1:], start=1):
        columns = [0, index]
        weights, bias = fit_logistic(train_rows[:, columns], train_labels.astype(float))
        combined = dev_rows[:, columns] @ weights
        print(
            f"  score + {name:<17} {auc(combined, dev_labels):.3f}"
            f"  weights {weights.round(2)}, bias {bias:.2f}"
        )


if __name__ == "__main__":
    main()
