"""Benchmark: the storing of a captured first refresh, replayed in one process.

The main process's storing (each feed's articles weighed, grouped, stored and indexed,
its transaction committed), the writes of what waits and the refinement, without the
extraction workers, the downloads or the server beside it: the part of a refresh that
only the main thread runs, measured with a tenth of the noise of a whole refresh.

Capture once: the bench's first refresh writes FILE (``bench/timed_refresh.py``; the
later refreshes of the run leave an existing FILE alone)::

    BENCH_CAPTURE=/tmp/medium.pkl .venv/bin/python -m bench --size medium --repeat 1

then replay, as often as wanted, into a fresh database each time::

    .venv/bin/python -m bench.store_replay /tmp/medium.pkl [--repeat 3] [--feeds N]

It prints the main thread's CPU storing (per article), writing what waits and
refining, medians of ``--repeat`` runs, and a digest of the stories' partition and
centroids: a change that must not change the grouping keeps the digest. Compare two
revisions by alternating their runs (each from its own worktree) on one capture.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aggregator.config import load_config
from aggregator.pipeline import refresh
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.refine import refine_window
from aggregator.storage import Storage


def load(path: str) -> list[tuple[Any, Any]]:
    """The captured feeds, in the order they were stored."""
    feeds = []
    with open(path, "rb") as captured:
        while True:
            try:
                feeds.append(pickle.load(captured))
            except EOFError:
                return feeds


def replay(path: str, feeds: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Store ``feeds`` into a fresh database as the refresh did; CPU seconds per step."""
    config = load_config(path + ".yaml")
    directory = tempfile.mkdtemp(prefix="store-replay-")
    try:
        storage = Storage.open(Path(directory) / "replay.db")
        ctx = PipelineContext.create(config, storage, workers=0, one_shot=True)
        try:
            storage.sync_feeds(config.feeds, ctx.clock())
            last = storage.last_article_id()
            started = time.thread_time()
            articles = 0
            for work, pages in feeds:
                refresh._finish_feed(ctx, work, pages)
                articles += len(pages)
            stored = time.thread_time()
            refresh._write_waiting(ctx)
            written = time.thread_time()
            refine_window(ctx, last)
            refined = time.thread_time()
            return {
                "articles": articles,
                "store": stored - started,
                "write": written - stored,
                "refine": refined - written,
                "digest": _digest(storage),
            }
        finally:
            ctx.close()
            storage.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _digest(storage: Storage) -> str:
    """The stories' partition of the articles and their centroids (not their ids: a
    refined story's id holds the clock)."""
    groups: dict[str, list[int]] = {}
    for article_id, story_id in storage.db.execute("SELECT id, story_id FROM articles"):
        groups.setdefault(story_id, []).append(article_id)
    centroids = storage.db.execute(
        "SELECT centroid, centroid_norm FROM stories WHERE centroid IS NOT NULL"
    ).fetchall()
    digest = hashlib.sha256(repr(sorted(groups.values())).encode())
    for centroid, norm in sorted(centroids):
        digest.update(centroid + repr(norm).encode())
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", help="a file written with BENCH_CAPTURE")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--feeds", type=int, default=0, help="only the first N feeds")
    args = parser.parse_args(argv)
    feeds = load(args.capture)
    if args.feeds:
        feeds = feeds[: args.feeds]
    runs = [replay(args.capture, feeds) for _ in range(args.repeat)]
    articles = runs[0]["articles"]

    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    print(
        f"{len(feeds)} feeds, {articles} articles, median of {len(runs)}: "
        f"store {median('store'):.2f} s ({median('store') * 1000 / max(articles, 1):.3f} "
        f"ms/art), write {median('write'):.2f} s, refine {median('refine'):.2f} s; "
        f"runs' store {[round(run['store'], 2) for run in runs]}; "
        f"digest {sorted({run['digest'] for run in runs})}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
