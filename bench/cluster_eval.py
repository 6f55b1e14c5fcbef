"""Story clustering quality on labelled news sets, and cost per article as the window grows.

Run by hand (not a test):
``python -m bench.cluster_eval [--sets ecb-dev,gvc-dev] [--orders 10] [--per-topic]
[--scale 1000,10000,100000]``.

Quality (issue 15's protocol): each set of bench/cluster_sets.py (ECB+ train and dev,
GVC train, dev and test, NewsWCL50) is fed as its own stream through the real
clustering code (``aggregator.stories.add_article_to_story`` on a real database), one
article at a time in a shuffled order, with timestamps spread evenly over one 36-hour
window, so that text, not time, has to separate the events. Articles arrive in
refreshes of ``--refresh`` minutes (one transaction each), after which the open window
is refined (``aggregator.stories.refine_open_stories``) unless ``--no-refine``. B-cubed
precision, recall and F1 against the gold events are averaged over ``--orders``
shuffled orders (min and max of F1 beside); "mixed" is the largest number of distinct
gold events in one story, over all orders. Beside each set, in the same run, the batch
baseline: TF-IDF (sublinear tf, English stop words, title + text) over the whole set at
once, average link, cut at cosine distance 0.8. Fit parameters on the train sets only;
NewsWCL50 is for seeing failure, never for tuning.

``--per-topic`` adds ECB+'s per-topic B-cubed scores, worst first; ``--mixed`` lists
the stories that mix events in the first order, with their gold events' sizes.

Scale: synthetic articles (random names and numbers over a Zipf vocabulary) are loaded
until the window holds N articles; then the time to place each further article is
measured (the storing process's work: weighed, grouped, stored, indexed), with the
database size and the index rows. As in the pipeline, each article comes with its
terms and fingerprint already computed (``cluster.features.text_features``, which the
daemon runs on its extraction workers); that cost is printed beside ("features").
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.cluster import duplicates
from aggregator.cluster import refine as cluster_refine
from aggregator.cluster.events import remember_background_shares
from aggregator.cluster.features import text_features
from aggregator.config import FeedSource, Settings
from aggregator.models import NewArticle
from aggregator.pipeline import refine as stories_refine
from aggregator.pipeline.stories import add_article_to_story
from aggregator.storage import Storage
from bench.cluster_sets import (
    SETS,
    Doc,
    baseline_labels,
    bcubed,
    load_set,
    mixed_stories,
    most_mixed,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
FEED = "https://bench.test/feed"
WINDOW = timedelta(hours=36)  # every set's articles are dated inside one such window
Refiner = Callable[[Storage, datetime, Settings], object]

__all__ = ["FEED", "START", "bcubed", "make_article", "open_storage"]


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


def prepared_article(
    storage: Storage, key: str, title: str, text: str, moment: datetime
) -> tuple[NewArticle, float]:
    """``make_article`` with its features computed first, as an extraction worker does
    for the pipeline; returns the article and the seconds its features took."""
    started = time.perf_counter()
    features = text_features(title, text)
    took = time.perf_counter() - started
    # as the pipeline's main process does
    remember_background_shares(features.terms, features.background)
    article = replace(
        make_article(storage, key, title, text, moment),
        terms=features.terms, packed_terms=features.packed_terms,
        signature=features.signature, bands=features.bands,
    )  # fmt: skip
    return article, took


@dataclass
class StreamRun:
    """One order of one set: the story of each article at the end, and the costs."""

    predicted: dict[str, str]
    placement_s: list[float] = field(default_factory=list)
    refine_s: list[float] = field(default_factory=list)
    fixed: int = 0  # articles the refinement moved in the refresh that brought them
    churn: int = 0  # articles it moved later: a reader saw them in another story


def cluster_stream(
    docs: Sequence[Doc],
    settings: Settings,
    *,
    refresh: timedelta = timedelta(minutes=30),
    refine: Refiner | None = None,
) -> StreamRun:
    """Feed ``docs`` in the given order, dated evenly over WINDOW, one refresh (one
    transaction, then a refinement if ``refine``) per ``refresh`` of that time."""
    run = StreamRun({})
    placed: dict[str, str] = {}
    step = WINDOW / max(len(docs), 1)
    with tempfile.TemporaryDirectory() as directory:
        storage = open_storage(directory)
        batches: dict[int, list[tuple[int, Doc]]] = defaultdict(list)
        for index, doc in enumerate(docs):
            batches[int(step * index / refresh)].append((index, doc))
        for batch in batches.values():
            with storage.transaction():
                for index, doc in batch:
                    moment = START + step * index
                    article = make_article(storage, doc.doc_id, doc.title, doc.text, moment)
                    started = time.perf_counter()
                    assignment = add_article_to_story(
                        storage, article, settings,
                        new_story_id=duplicates.new_story_id(FEED, doc.doc_id),
                    )  # fmt: skip
                    run.placement_s.append(time.perf_counter() - started)
                    placed[doc.doc_id] = assignment.story_id
            storage.flush_frequencies()  # as the pipeline: once per refresh
            if refine is not None:
                now = START + step * batch[-1][0]
                before = _story_of_articles(storage)
                started = time.perf_counter()
                with storage.transaction():
                    refine(storage, now, settings)
                run.refine_s.append(time.perf_counter() - started)
                fresh = {doc.doc_id for _, doc in batch}
                for doc_id, story in _story_of_articles(storage).items():
                    if story != before[doc_id]:
                        run.fixed += doc_id in fresh
                        run.churn += doc_id not in fresh
        run.predicted = storage_stories(storage, placed)
        storage.close()
    return run


def storage_stories(storage: Storage, placed: dict[str, str]) -> dict[str, str]:
    """Each article's story now (merges and refinement may have moved it)."""
    story_of = _story_of_articles(storage)
    return {doc_id: story_of.get(doc_id, story) for doc_id, story in placed.items()}


def _story_of_articles(storage: Storage) -> dict[str, str]:
    rows = storage.db.execute("SELECT canonical_url, story_id FROM articles").fetchall()
    return {url.rsplit("/", 1)[1]: story for url, story in rows}


@dataclass(frozen=True)
class SetResult:
    name: str
    docs: int
    events: int
    scores: list[tuple[float, float, float]]
    mixed: int
    placement_ms: float
    refine_ms: float
    baseline: tuple[float, float, float]
    baseline_mixed: int
    topics: list[tuple[str, int, float, float, float]]
    mixed_first: list[tuple[str, dict[str, int]]]
    fixed: float  # per order: articles moved in the refresh that brought them
    churn: float  # per order: articles moved after a reader saw them in a story


def evaluate_set(
    name: str, orders: int, settings: Settings, refine: Refiner | None, refresh: timedelta
) -> SetResult:
    docs = load_set(name)
    gold = {doc.doc_id: doc.gold for doc in docs}
    groups: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        if doc.group:
            groups[doc.group].append(doc.doc_id)
    scores, mixed, placement, refining = [], 0, [], []
    per_group: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    mixed_first: list[tuple[str, dict[str, int]]] = []
    fixed = churn = 0
    for seed in range(orders):
        order = docs[:]
        random.Random(seed).shuffle(order)
        run = cluster_stream(order, settings, refresh=refresh, refine=refine)
        scores.append(bcubed(run.predicted, gold))
        mixed = max(mixed, most_mixed(run.predicted, gold))
        if seed == 0:
            mixed_first = mixed_stories(run.predicted, gold)
        placement += run.placement_s
        refining += run.refine_s
        fixed, churn = fixed + run.fixed, churn + run.churn
        for group, ids in groups.items():
            per_group[group].append(bcubed({i: run.predicted[i] for i in ids},
                                           {i: gold[i] for i in ids}))  # fmt: skip
    base = baseline_labels(docs)
    topics = sorted(
        ((group, len(groups[group]), *(statistics.fmean(s[i] for s in rows) for i in range(3)))
         for group, rows in per_group.items()),
        key=lambda row: (row[4], row[0]),
    )  # fmt: skip
    return SetResult(
        name, len(docs), len(set(gold.values())), scores, mixed,
        statistics.median(placement) * 1000,
        statistics.median(refining) * 1000 if refining else 0.0,
        bcubed(base, gold), most_mixed(base, gold), topics, mixed_first,
        fixed / orders, churn / orders,
    )  # fmt: skip


def print_quality(
    names: Sequence[str], orders: int, refine: Refiner | None, refresh: timedelta,
    *, per_topic: bool, show_mixed: bool, settings: Settings | None = None,
) -> None:  # fmt: skip
    settings = settings or Settings()
    what = "with refinement" if refine else "online only"
    print(f"our clustering ({what}), {orders} orders, refreshes of {refresh}; batch beside it:")
    header = ("set", "docs", "evts", "P", "R", "F1", "min", "max", "mixed",
              "bP", "bR", "bF1", "bmix", "F1-bF1", "ms/art", "ms/ref", "fixed",
              "churn")  # fmt: skip
    line = "{:<10} {:>4} {:>4} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5}  {:>6} {:>6} {:>6} {:>4} {:>7}"
    line += " {:>6} {:>7} {:>5} {:>5}"
    print(line.format(*header))
    results = []
    for name in names:
        row = evaluate_set(name, orders, settings, refine, refresh)
        results.append(row)
        p, r, f1 = (statistics.fmean(score[i] for score in row.scores) for i in range(3))
        f1s = [score[2] for score in row.scores]
        bp, br, bf1 = row.baseline
        print(
            f"{name:<10} {row.docs:>4} {row.events:>4} {p:>6.3f} {r:>6.3f} {f1:>6.3f}"
            f" {min(f1s):>6.3f} {max(f1s):>6.3f} {row.mixed:>5}  {bp:>6.3f} {br:>6.3f}"
            f" {bf1:>6.3f} {row.baseline_mixed:>4} {f1 - bf1:>+7.3f}"
            f" {row.placement_ms:>6.2f} {row.refine_ms:>7.1f} {row.fixed:>5.0f} {row.churn:>5.0f}",
            flush=True,
        )
    for row in results:
        if per_topic and row.topics:
            print(f"{row.name} topics, worst first (B-cubed within the topic, mean of orders):")
            for topic, size, p, r, f1 in row.topics:
                print(f"  topic {topic:>3}  {size:>3} docs  P {p:.2f}  R {r:.2f}  F1 {f1:.2f}")
        if show_mixed and row.mixed_first:
            print(f"{row.name}: stories mixing events (first order), event -> articles:")
            for story, events in row.mixed_first:
                print(f"  {story}: {dict(sorted(events.items(), key=lambda e: -e[1]))}")


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
                        article, _ = prepared_article(storage, f"s{loaded}", title, text, moment)
                        add_article_to_story(storage, article, settings, new_story_id=f"s{loaded}")
                        loaded += 1
                storage.flush_frequencies()  # as the pipeline: once per refresh
            timings, features = [], []
            with storage.transaction():  # the pipeline commits once per feed, not per article
                for probe in range(probes):
                    title, text = news.article()
                    moment = START + timedelta(seconds=loaded)
                    key = f"p{size}-{probe}"
                    article, took = prepared_article(storage, key, title, text, moment)
                    features.append(took)
                    started = time.perf_counter()
                    add_article_to_story(storage, article, settings, new_story_id=key)
                    timings.append(time.perf_counter() - started)
                    loaded += 1
            size_mb = (Path(directory) / "bench.db").stat().st_size / 1e6
            keys = storage.db.execute("SELECT COUNT(*) FROM story_keys").fetchone()[0]
            results.append({"window": size, "ms_median": statistics.median(timings) * 1000,
                            "ms_p90": statistics.quantiles(timings, n=10)[-1] * 1000,
                            "features_ms": statistics.median(features) * 1000,
                            "db_mb": size_mb, "index_rows": keys,
                            # the process's high-water mark: SQLite's page cache and our
                            # per-process caches; the index itself lives in the database
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            / 1024})  # fmt: skip
            print(f"  {size:>7} articles: {results[-1]['ms_median']:.2f} ms median", flush=True)
        storage.close()
    return results


def measure_refinement(sizes: Sequence[int], fresh: int) -> list[dict[str, Any]]:
    """The refinement's cost with N synthetic articles in the open window: once over a
    window that was never refined (catch-up), then after one more refresh of ``fresh``
    articles (steady state); and the pure steps of the latter (term vectors from the
    stored text, similarity edges, average link) timed on their own."""
    news = SyntheticNews(seed=11)
    settings = Settings.model_validate({"clustering": {"window": "3650d"}})
    results = []
    with tempfile.TemporaryDirectory() as directory:
        storage = open_storage(directory)
        loaded = 0

        def load(count: int) -> datetime:
            nonlocal loaded
            moment = START
            with storage.transaction():
                for _ in range(count):
                    title, text = news.article()
                    moment = START + timedelta(seconds=loaded)
                    article = make_article(storage, f"r{loaded}", title, text, moment)
                    add_article_to_story(storage, article, settings, new_story_id=f"r{loaded}")
                    loaded += 1
            storage.flush_frequencies()  # as the pipeline: once per refresh
            return moment

        for size in sizes:
            while loaded < size:
                now = load(min(1000, size - loaded))
            catch_up = _timed_refinement(storage, now, settings)
            now = load(fresh)
            steady = _timed_refinement(storage, now, settings)
            steps = _refinement_steps(storage, now, settings)
            results.append({"window": loaded, "catch_up_s": catch_up[0], "catch_up_moves":
                            catch_up[1], "steady_s": steady[0], "steady_moves": steady[1],
                            **steps})  # fmt: skip
            print(f"  {loaded:>7} articles: refinement {steady[0]:.2f} s", flush=True)
        storage.close()
    return results


def _timed_refinement(storage: Storage, now: datetime, settings: Settings) -> tuple[float, int]:
    started = time.perf_counter()
    with storage.transaction():
        plan = stories_refine.refine_open_stories(storage, now, settings)
    return time.perf_counter() - started, len(plan.moves)


def _refinement_steps(storage: Storage, now: datetime, settings: Settings) -> dict[str, float]:
    """The refinement's pure steps, each timed (the same calls refine_open_stories makes)."""
    window = settings.clustering
    clock = time.perf_counter()
    rows = storage.open_story_reports(since=now - window.window, first_since=now - window.max_age)
    vectors = stories_refine.report_vectors(storage, stories_refine.reports_of(rows))
    read_s, clock = time.perf_counter() - clock, time.perf_counter()
    edges = cluster_refine.similarity_edges(vectors)
    edges_s, clock = time.perf_counter() - clock, time.perf_counter()
    groups = cluster_refine.average_link(len(vectors), edges, window.join_threshold)
    link_s = time.perf_counter() - clock
    return {"read_s": read_s, "edges_s": edges_s, "link_s": link_s, "edges": len(edges),
            "groups": len(groups)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"of {', '.join(SETS)}")
    parser.add_argument("--orders", "--seeds", type=int, default=10, help="shuffled orders")
    parser.add_argument("--refresh", type=int, default=30, help="minutes per refresh")
    parser.add_argument("--no-refine", action="store_true", help="online placement only")
    parser.add_argument("--per-topic", action="store_true", help="ECB+ B-cubed per topic")
    parser.add_argument("--mixed", action="store_true", help="list stories mixing events")
    parser.add_argument("--scale", default="1000,10000,100000", help="window sizes; '' to skip")
    parser.add_argument("--probes", type=int, default=200, help="articles timed per size")
    parser.add_argument("--refine-scale", default="5000,50000", help="windows; '' to skip")
    parser.add_argument("--fresh", type=int, default=100, help="articles in one more refresh")
    parser.add_argument("--no-baseline", action="store_true", help="(kept; baseline is cheap)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a clustering setting for this run, e.g. join_threshold=0.25 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.no_quality:
        refine = None if args.no_refine else stories_refine.refine_open_stories
        print_quality(
            [name for name in args.sets.split(",") if name], args.orders, refine,
            timedelta(minutes=args.refresh), per_topic=args.per_topic, show_mixed=args.mixed,
            settings=Settings.model_validate(
                {"clustering": dict(item.split("=", 1) for item in args.set)}
            ),
        )  # fmt: skip
    if args.scale:
        print("scale (synthetic articles in one open window, timed inside a transaction):")
        for row in measure_scale([int(size) for size in args.scale.split(",")], args.probes):
            print(
                f"  window {row['window']:>7}: {row['ms_median']:.2f} ms median,"
                f" {row['ms_p90']:.2f} ms p90 per article (features, on a worker:"
                f" {row['features_ms']:.2f} ms); db {row['db_mb']:.0f} MB,"
                f" {row['index_rows']} index rows; peak RSS {row['peak_rss_mb']:.0f} MB"
            )

    if args.refine_scale:
        print("refinement (synthetic articles in one open window, one transaction each):")
        sizes = [int(size) for size in args.refine_scale.split(",")]
        for row in measure_refinement(sizes, args.fresh):
            print(
                f"  window {row['window']:>7}: {row['steady_s']:.2f} s after a refresh of"
                f" {args.fresh} ({row['steady_moves']} moves); {row['catch_up_s']:.2f} s"
                f" catching up ({row['catch_up_moves']} moves); steps: read and weigh"
                f" {row['read_s']:.2f} s, {row['edges']} edges {row['edges_s']:.2f} s,"
                f" average link {row['link_s']:.2f} s -> {row['groups']} stories"
            )


if __name__ == "__main__":
    main()
