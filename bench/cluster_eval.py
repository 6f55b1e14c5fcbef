"""Story clustering quality on ECB+ and cost per article as the window grows.

Run by hand (not a test):
``python -m bench.cluster_eval [--seeds 10] [--per-topic] [--scale 1000,10000]``.

Quality: the ECB+ documents in ../shared/eval/ecbplus-dev (772 news articles with human
event labels; each topic holds two different events of the same kind) are fed through
the real clustering code (``aggregator.stories.add_article_to_story`` on a real
database) one by one, in a shuffled order (the corpus has no dates) with timestamps a
minute apart inside one window, so that text alone has to separate the events.
B-cubed precision, recall and F1 against the ``subtopic`` labels are reported for the
train topics (which the defaults were chosen on) and the dev topics (never tuned on),
averaged over several orders (one order is noisy: on dev, F1 ranged from 0.87 to 0.92
over ten). ``--per-topic`` adds each topic's B-cubed scores, worst first: a topic whose
precision is near 0.5 had its two events merged, one with low recall was fragmented.
The baseline in the same run: batch TF-IDF cosine with average-link agglomerative
clustering, its threshold tuned on train.

Scale: synthetic articles (random names and numbers over a Zipf vocabulary) are loaded
until the window holds N articles; then the time to place each further article is
measured, with the database size and the index rows.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.cluster import duplicates
from aggregator.config import FeedSource, Settings
from aggregator.models import NewArticle
from aggregator.pipeline.stories import add_article_to_story
from aggregator.storage import Storage

ECB = Path(__file__).resolve().parents[2] / "shared" / "eval" / "ecbplus-dev" / "docs.jsonl"
START = datetime(2026, 1, 1, tzinfo=UTC)
FEED = "https://bench.test/feed"


def load_docs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in ECB.read_text().splitlines() if line.strip()]


def bcubed(predicted: dict[str, str], gold: dict[str, str]) -> tuple[float, float, float]:
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


def open_storage(directory: str) -> Storage:
    storage = Storage.open(Path(directory) / "bench.db")
    storage.sync_feeds([FeedSource(url=FEED, name="bench")], START)
    return storage


def make_article(storage: Storage, key: str, title: str, text: str, moment: datetime) -> NewArticle:
    fingerprint = duplicates.fingerprint(text)
    url = f"https://bench.test/{key}"
    return NewArticle(
        feed_id=storage.feed_state(FEED).id, entry_key=key, guid=None, url=url,
        canonical_url=url, title=title, author=None, summary="", feed_content="",
        text=text, html="", image=None, published_at=moment, fetched_at=moment,
        extraction_status="extracted", extraction_note="",
        signature=fingerprint.signature if fingerprint else None,
        bands=fingerprint.bands if fingerprint else (),
    )  # fmt: skip


def cluster_online(
    docs: Sequence[dict[str, Any]], settings: Settings
) -> tuple[dict[str, str], list[float]]:
    """Our clustering, one article at a time; returns story per doc and seconds per doc."""
    predicted: dict[str, str] = {}
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        storage = open_storage(directory)
        for index, doc in enumerate(docs):
            moment = START + timedelta(minutes=index)
            article = make_article(storage, doc["doc_id"], doc["title"], doc["text"], moment)
            started = time.perf_counter()
            with storage.transaction():
                placed = add_article_to_story(
                    storage,
                    article,
                    settings,
                    new_story_id=duplicates.new_story_id(FEED, doc["doc_id"]),
                )
            timings.append(time.perf_counter() - started)
            predicted[doc["doc_id"]] = placed.story_id
        final = {
            doc_id: storage.resolve_story_id(story) or story for doc_id, story in predicted.items()
        }
        storage.close()
    return final, timings


def baseline_labels(docs: Sequence[dict[str, Any]], threshold: float) -> dict[str, str]:
    """Batch TF-IDF (title + text) cosine, average-link agglomerative clustering."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{doc['title']}\n{doc['text']}" for doc in docs]
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - threshold
    )
    labels = model.fit_predict(matrix.toarray())
    return {doc["doc_id"]: str(label) for doc, label in zip(docs, labels, strict=True)}


def evaluate_split(
    docs: list[dict[str, Any]], split: str, seeds: int, settings: Settings
) -> dict[str, Any]:
    subset = [doc for doc in docs if doc["split"] == split]
    gold = {doc["doc_id"]: doc["subtopic"] for doc in subset}
    topics: dict[str, list[str]] = defaultdict(list)
    for doc in subset:
        topics[str(doc["topic"])].append(doc["doc_id"])
    scores, timings = [], []
    per_topic: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for seed in range(seeds):
        order = subset[:]
        random.Random(seed).shuffle(order)
        predicted, seconds = cluster_online(order, settings)
        scores.append(bcubed(predicted, gold))
        timings += seconds
        for topic, ids in topics.items():
            per_topic[topic].append(
                bcubed({i: predicted[i] for i in ids}, {i: gold[i] for i in ids})
            )
    mean = [statistics.fmean(score[i] for score in scores) for i in range(3)]
    topic_rows = sorted(
        (
            (topic, len(topics[topic]), *(statistics.fmean(s[i] for s in rows) for i in range(3)))
            for topic, rows in per_topic.items()
        ),
        key=lambda row: (row[4], row[0]),
    )
    return {"split": split, "docs": len(subset), "p": mean[0], "r": mean[1], "f1": mean[2],
            "f1_min": min(s[2] for s in scores), "f1_max": max(s[2] for s in scores),
            "ms_median": statistics.median(timings) * 1000,
            "ms_p90": statistics.quantiles(timings, n=10)[-1] * 1000,
            "topics": topic_rows}  # fmt: skip


def evaluate_baseline(docs: list[dict[str, Any]]) -> dict[str, Any]:
    train = [doc for doc in docs if doc["split"] == "train"]
    dev = [doc for doc in docs if doc["split"] == "dev"]
    gold = {doc["doc_id"]: doc["subtopic"] for doc in docs}
    tuned = max(
        (bcubed(baseline_labels(train, t), {d["doc_id"]: gold[d["doc_id"]] for d in train})[2], t)
        for t in [i / 100 for i in range(5, 60, 2)]
    )
    threshold = tuned[1]
    started = time.perf_counter()
    dev_scores = bcubed(
        baseline_labels(dev, threshold), {d["doc_id"]: gold[d["doc_id"]] for d in dev}
    )
    elapsed = time.perf_counter() - started
    return {"threshold": threshold, "train_f1": tuned[0], "p": dev_scores[0], "r": dev_scores[1],
            "f1": dev_scores[2], "ms_per_doc": elapsed / len(dev) * 1000}  # fmt: skip


# -- scale ------------------------------------------------------------------------------

SYLLABLES = "ka lo ren tis var mon del sa bri ost gal mer tu ha vin dor pel is ro an".split()


class SyntheticNews:
    """Synthetic articles shaped like news: common English words (Zipf-distributed,
    from wordfreq's list) around a few invented names and numbers that belong to one
    event; each event gets two to four articles, so stories stay small as in life."""

    def __init__(self, seed: int = 7) -> None:
        from wordfreq import top_n_list

        self.rng = random.Random(seed)
        self.vocabulary = [word for word in top_n_list("en", 20000) if word.isalpha()]
        self.weights = [1 / (rank + 10) for rank in range(len(self.vocabulary))]
        self.event: tuple[list[str], list[str]] = ([], [])
        self.left = 0

    def _new_event(self) -> None:
        rng = self.rng
        names = ["".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize() for _ in range(4)]
        numbers = [str(rng.randint(2, 5000)) for _ in range(2)]
        self.event, self.left = (names, numbers), rng.randint(2, 4)

    def article(self) -> tuple[str, str]:
        if self.left == 0:
            self._new_event()
        self.left -= 1
        names, numbers = self.event
        words = self.rng.choices(self.vocabulary, weights=self.weights, k=230)
        title = " ".join([names[0], *words[:4], names[1], numbers[0]])
        lead = words[4:40] + names + numbers
        body = words[40:] + names[:2]
        return title, " ".join(lead + body)


def measure_scale(sizes: Sequence[int], probes: int) -> list[dict[str, Any]]:
    news = SyntheticNews()
    settings = Settings.model_validate({"clustering": {"window": "3650d"}})
    results = []
    with tempfile.TemporaryDirectory() as directory:
        storage = open_storage(directory)
        loaded = 0
        for size in sizes:
            while loaded < size:
                with storage.transaction():
                    for _ in range(min(500, size - loaded)):
                        title, text = news.article()
                        moment = START + timedelta(seconds=loaded)
                        article = make_article(storage, f"s{loaded}", title, text, moment)
                        add_article_to_story(storage, article, settings, new_story_id=f"s{loaded}")
                        loaded += 1
            timings = []
            with storage.transaction():  # the pipeline commits once per feed, not per article
                for probe in range(probes):
                    title, text = news.article()
                    moment = START + timedelta(seconds=loaded)
                    article = make_article(storage, f"p{size}-{probe}", title, text, moment)
                    started = time.perf_counter()
                    add_article_to_story(
                        storage, article, settings, new_story_id=f"p{size}-{probe}"
                    )
                    timings.append(time.perf_counter() - started)
                    loaded += 1
            size_mb = (Path(directory) / "bench.db").stat().st_size / 1e6
            keys = storage.db.execute("SELECT COUNT(*) FROM story_keys").fetchone()[0]
            results.append({"window": size, "ms_median": statistics.median(timings) * 1000,
                            "ms_p90": statistics.quantiles(timings, n=10)[-1] * 1000,
                            "db_mb": size_mb, "index_rows": keys,
                            # the process's high-water mark: SQLite's page cache and our
                            # per-process caches; the index itself lives in the database
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            / 1024})  # fmt: skip
            print(f"  {size:>7} articles: {results[-1]['ms_median']:.2f} ms median", flush=True)
        storage.close()
    return results


def print_quality(docs: list[dict[str, Any]], seeds: int, baseline: bool, per_topic: bool) -> None:
    print(f"ECB+ ({len(docs)} docs), our online clustering, {seeds} orders each:")
    header = ("split", "docs", "P", "R", "F1", "F1 min", "F1 max", "ms/doc", "p90")
    print("{:<6} {:>5} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6}".format(*header))
    rows = [evaluate_split(docs, split, seeds, Settings()) for split in ("train", "dev")]
    for row in rows:
        print(
            f"{row['split']:<6} {row['docs']:>5} {row['p']:>6.3f} {row['r']:>6.3f}"
            f" {row['f1']:>6.3f} {row['f1_min']:>7.3f} {row['f1_max']:>7.3f}"
            f" {row['ms_median']:>7.2f} {row['ms_p90']:>6.2f}"
        )
    if per_topic:
        for row in rows:
            print(f"{row['split']} topics, worst first (B-cubed within the topic, mean of orders):")
            for topic, size, p, r, f1 in row["topics"]:
                print(f"  topic {topic:>3}  {size:>3} docs  P {p:.2f}  R {r:.2f}  F1 {f1:.2f}")
    if baseline:
        base = evaluate_baseline(docs)
        print(
            f"baseline (batch TF-IDF, average link, threshold {base['threshold']:.2f}"
            f" tuned on train, train F1 {base['train_f1']:.3f}):"
        )
        print(
            f"dev    P {base['p']:.3f}  R {base['r']:.3f}  F1 {base['f1']:.3f}"
            f"  ({base['ms_per_doc']:.2f} ms/doc, batch)"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="shuffled orders per split")
    parser.add_argument("--per-topic", action="store_true", help="B-cubed of each topic too")
    parser.add_argument("--scale", default="1000,10000,100000", help="window sizes; '' to skip")
    parser.add_argument("--probes", type=int, default=200, help="articles timed per size")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_quality:
        print_quality(load_docs(), args.seeds, not args.no_baseline, args.per_topic)
    if args.scale:
        print("scale (synthetic articles in one open window, timed inside a transaction):")
        for row in measure_scale([int(size) for size in args.scale.split(",")], args.probes):
            print(
                f"  window {row['window']:>7}: {row['ms_median']:.2f} ms median,"
                f" {row['ms_p90']:.2f} ms p90 per article; db {row['db_mb']:.0f} MB,"
                f" {row['index_rows']} index rows; peak RSS {row['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
