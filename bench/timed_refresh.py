"""``aggregator refresh`` with the main process's own CPU per new article measured.

``python -m bench.timed_refresh --config FILE refresh`` is the real command (the same
``aggregator.cli.main``), with two steps of the refresh's main thread timed by
``time.thread_time`` (that thread's CPU only: the download threads and the extraction
workers are not in it):

* storing each feed (its articles stored, grouped, indexed, and its fetch state): the
  CPU divided by the feed's new articles, one figure per feed with new articles;
* the refinement of the open stories after the refresh, once.

At exit it prints one line, ``bench-timings: {json}``, that ``python -m bench`` reads.
Measuring from outside keeps bench hooks out of the product; the wrappers call the
product's own functions unchanged.
"""

from __future__ import annotations

import atexit
import json
import time
from collections.abc import Callable
from typing import Any

from aggregator.pipeline import refresh as refresh_module

PREFIX = "bench-timings: "
_per_article: list[tuple[int, float]] = []  # (new articles, CPU seconds) per stored feed
_refine: list[float] = []


def _timed_finish(original: Callable[..., Any]) -> Callable[..., Any]:
    def finish(ctx: Any, work: Any, pages: list[Any]) -> Any:
        started = time.thread_time()
        try:
            return original(ctx, work, pages)
        finally:
            if pages:
                _per_article.append((len(pages), time.thread_time() - started))

    return finish


def _timed_refine(original: Callable[..., Any]) -> Callable[..., Any]:
    def refine(*args: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args)
        finally:
            _refine.append(time.thread_time() - started)

    return refine


def _report() -> None:
    print(PREFIX + json.dumps({"store": _per_article, "refine": _refine}), flush=True)


def main() -> None:
    for name, wrap in (("_finish_feed", _timed_finish), ("refine_window", _timed_refine)):
        setattr(refresh_module, name, wrap(getattr(refresh_module, name)))
    atexit.register(_report)
    from aggregator.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
