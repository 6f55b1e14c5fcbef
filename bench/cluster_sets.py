"""The labelled event-clustering sets of ../shared/eval, in one shape, with the metrics
and the batch baseline that bench/cluster_eval.py reports beside our clustering.

Sets (each fed as a stream of its own):

* ``ecb-train``, ``ecb-dev``: ECB+ (two events of one kind per topic; gold = subtopic);
* ``gvc-train``, ``gvc-dev``, ``gvc-test``: the Gun Violence Corpus by its ``split``
  field (many shootings in one vocabulary; gold = the incident);
* ``newswcl50``: ten political events sharing their actors, five outlets each. It has
  no headlines: the title is left empty (the text starts at the dateline), in our
  clustering and in the baseline alike. Never tuned on.

Fit parameters on the train sets only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
ECB = EVAL / "ecbplus-dev" / "docs.jsonl"
GVC = EVAL / "gvc" / "docs.jsonl"
NEWSWCL = EVAL / "newswcl50" / "docs.jsonl"
SETS = ("ecb-train", "ecb-dev", "gvc-train", "gvc-dev", "gvc-test", "newswcl50")
BASELINE_DISTANCE = 0.8  # the batch reference: cut at cosine distance 0.8


@dataclass(frozen=True)
class Doc:
    """One labelled article: ``gold`` is its event; ``group`` its ECB+ topic (else '')."""

    doc_id: str
    gold: str
    title: str
    text: str
    group: str = ""


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_set(name: str) -> list[Doc]:
    """The articles of one set, in file order."""
    if name.startswith("ecb-"):
        split = name.removeprefix("ecb-")
        return [
            Doc(str(d["doc_id"]), str(d["subtopic"]), str(d["title"]), str(d["text"]),
                str(d["topic"]))
            for d in _read(ECB) if d["split"] == split
        ]  # fmt: skip
    if name.startswith("gvc-"):
        split = name.removeprefix("gvc-")
        return [
            Doc(str(d["doc_id"]), str(d["event_id"]), str(d["title"]), str(d["text"]))
            for d in _read(GVC) if d["split"] == split
        ]  # fmt: skip
    if name == "newswcl50":
        return [
            Doc(str(d["doc_id"]), str(d["event_id"]), "", str(d["text"])) for d in _read(NEWSWCL)
        ]
    raise ValueError(f"unknown set {name!r}; known: {', '.join(SETS)}")


def bcubed(predicted: Mapping[str, str], gold: Mapping[str, str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of ``predicted`` against ``gold`` (item -> label)."""
    clusters: dict[str, set[str]] = defaultdict(set)
    classes: dict[str, set[str]] = defaultdict(set)
    for item in gold:
        clusters[predicted[item]].add(item)
        classes[gold[item]].add(item)
    precision = recall = 0.0
    for item in gold:
        shared = len(clusters[predicted[item]] & classes[gold[item]])
        precision += shared / len(clusters[predicted[item]])
        recall += shared / len(classes[gold[item]])
    precision, recall = precision / len(gold), recall / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def most_mixed(predicted: Mapping[str, str], gold: Mapping[str, str]) -> int:
    """The largest number of distinct gold events in one predicted story."""
    events: dict[str, set[str]] = defaultdict(set)
    for item, story in predicted.items():
        events[story].add(gold[item])
    return max((len(found) for found in events.values()), default=0)


def mixed_stories(
    predicted: Mapping[str, str], gold: Mapping[str, str]
) -> list[tuple[str, dict[str, int]]]:
    """Every predicted story holding more than one gold event, with its events' counts."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item, story in predicted.items():
        counts[story][gold[item]] += 1
    return sorted(
        ((story, dict(events)) for story, events in counts.items() if len(events) > 1),
        key=lambda pair: -sum(pair[1].values()),
    )


def baseline_labels(docs: Sequence[Doc], distance: float = BASELINE_DISTANCE) -> dict[str, str]:
    """The issue's batch reference: TF-IDF (sublinear tf, English stop words, title +
    text) over all articles at once, average link, cut at cosine distance ``distance``.
    scikit-learn is a bench-only dependency."""
    try:
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:  # .ci/run makes a fresh .venv without the bench extra
        raise SystemExit(
            "the batch baseline needs scikit-learn, a bench-only extra: run"
            " `scripts/install bench` (`.ci/run` makes a fresh .venv without it)"
        ) from exc

    texts = [f"{doc.title}\n{doc.text}" for doc in docs]
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance
    )
    labels = model.fit_predict(matrix.toarray())
    return {doc.doc_id: str(label) for doc, label in zip(docs, labels, strict=True)}
