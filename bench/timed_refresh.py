"""``aggregator refresh`` with the main process's own CPU per new article measured.

``python -m bench.timed_refresh --config FILE refresh`` is the real command (the same
``aggregator.cli.main``), with two steps of the refresh's main thread timed by
``time.thread_time`` (that thread's CPU only: the download threads and the extraction
workers are not in it):

* storing each feed (its articles stored, grouped, indexed, and its fetch state): the
  CPU divided by the feed's new articles, one figure per feed with new articles, less
  the writes below when a feed's storing made them;
* writing what waits (the document frequencies counted in memory and the search
  index's queue): every 1,000 articles and at the end, each call's CPU;
* the refinement of the open stories after the refresh, once (``refine_if_due``).

At exit it prints one line, ``bench-timings: {json}``, that ``python -m bench`` reads.
Measuring from outside keeps bench hooks out of the product; the wrappers call the
product's own functions unchanged.

With ``BENCH_CAPTURE=FILE`` in the environment, and no FILE yet, it also pickles what
each feed's storing received (the feed's work and its prepared pages, in the order
stored) into FILE, and copies the config beside it as FILE.yaml:
``bench/store_replay.py`` stores them again. A FILE already there (a later refresh of
the same bench run) is left alone.

With ``BENCH_ABLATE=grouping`` (``python -m bench --ablate grouping``) the refresh runs
without its grouping, to measure what the grouping costs: each article is stored as a
story of its own (no copy found, no story compared, no story profile grown) and the
open stories are not refined. Everything else is the product's: the downloads, the
extraction workers (which still compute the grouping's features), the article and
story rows, the search index, the document frequencies. Its figures are a
measurement, never the product's.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable
from typing import Any

from aggregator.config import Settings
from aggregator.models import Assignment, NewArticle
from aggregator.pipeline import articles as articles_module
from aggregator.pipeline import refresh as refresh_module
from aggregator.pipeline.stories import StoryAssignment
from aggregator.storage import Storage

PREFIX = "bench-timings: "
_per_article: list[tuple[int, float]] = []  # (new articles, CPU seconds) per stored feed
_refine: list[float] = []
_writes: list[float] = []


def _timed_finish(original: Callable[..., Any]) -> Callable[..., Any]:
    capture = os.environ.get("BENCH_CAPTURE", "")
    if os.path.exists(capture):
        capture = ""  # captured by an earlier refresh of this run

    def finish(ctx: Any, work: Any, pages: list[Any]) -> Any:
        if capture:
            _capture(capture, ctx, work, pages)
        started, written = time.thread_time(), sum(_writes)
        try:
            return original(ctx, work, pages)
        finally:
            if pages:
                writing = sum(_writes) - written  # counted apart, in "write"
                _per_article.append((len(pages), time.thread_time() - started - writing))

    return finish


def _capture(path: str, ctx: Any, work: Any, pages: list[Any]) -> None:
    if not os.path.exists(path + ".yaml"):
        shutil.copy(ctx.config.path, path + ".yaml")
    with open(path, "ab") as captured:
        pickle.dump((work, pages), captured, protocol=pickle.HIGHEST_PROTOCOL)


def _timed_refine(original: Callable[..., Any]) -> Callable[..., Any]:
    def refine(*args: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args)
        finally:
            _refine.append(time.thread_time() - started)

    return refine


def _timed_write(original: Callable[..., Any]) -> Callable[..., Any]:
    def write(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            _writes.append(time.thread_time() - started)

    return write


ABLATIONS = ("grouping",)


def stored_alone(
    storage: Storage, article: NewArticle, settings: Settings, *, new_story_id: str
) -> StoryAssignment:
    """``add_article_to_story`` without the grouping: the article stored as a story of
    its own, its terms still counted into the document frequencies."""
    article_id = storage.add_article(article, Assignment(None, "new"), new_story_id)
    storage.count_document(article_id, article.terms or {})
    return StoryAssignment(article_id, new_story_id, "new", None)


def _not_refined(ctx: Any) -> bool:
    return False


def ablate(name: str) -> None:
    """Take ``name`` (one of ABLATIONS) out of this process's refresh."""
    if name not in ABLATIONS:
        raise SystemExit(f"BENCH_ABLATE={name!r}: not one of {', '.join(ABLATIONS)}")
    for module, function, replacement in (
        (articles_module, "add_article_to_story", stored_alone),
        (refresh_module, "refine_if_due", _not_refined),
    ):
        getattr(module, function)  # renamed in the pipeline: fail here, not silently
        setattr(module, function, replacement)


def _report() -> None:
    timings = {"store": _per_article, "refine": _refine, "write": _writes}
    print(PREFIX + json.dumps(timings), flush=True)


def main() -> None:
    if ablation := os.environ.get("BENCH_ABLATE", ""):
        ablate(ablation)
    for name, wrap in (
        ("_finish_feed", _timed_finish),
        ("refine_if_due", _timed_refine),
        ("_write_waiting", _timed_write),
    ):
        setattr(refresh_module, name, wrap(getattr(refresh_module, name)))
    atexit.register(_report)
    from aggregator.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
