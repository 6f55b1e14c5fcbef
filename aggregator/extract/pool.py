"""The extraction worker pool: trafilatura on worker processes, one per core.

trafilatura holds the GIL, so threads would not use the second core.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from aggregator.extract.extractor import extract_article
from aggregator.extract.options import DEFAULT_OPTIONS, ExtractOptions
from aggregator.models import Article
from aggregator.processes import spawning, worker_initializer


class ExtractionPool:
    """Runs ``extract_article`` on worker processes (one per core), or inline if workers=0.

    Workers are spawned, not forked: the daemon has threads (scheduler, server) and a
    forked child could inherit a held lock. They ignore Ctrl-C and exit when this
    process dies (processes.py).
    """

    def __init__(self, workers: int) -> None:
        self._executor: Executor | None = None
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )

    def extract_many(
        self,
        pages: Iterable[tuple[bytes, str]],
        options: Iterable[ExtractOptions] | None = None,
    ) -> Iterator[Article | None]:
        """Extract each (page, url) pair, yielding results in input order."""
        pages = list(pages)
        per_page = list(options) if options is not None else [DEFAULT_OPTIONS] * len(pages)
        if self._executor is None:
            return (
                extract_article(page, url, options=opts)
                for (page, url), opts in zip(pages, per_page, strict=True)
            )
        bodies = [page for page, _ in pages]
        urls = [url for _, url in pages]
        with spawning():  # map() starts the workers it needs
            return self._executor.map(_extract_in_worker, bodies, urls, per_page)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# How much lower than the daemon's main process a worker runs. On a 2-core machine the
# main process (storing, clustering, serving HTTP) is the pipeline's critical path; at
# equal priority the two busy workers take two thirds of the CPU from it.
WORKER_NICENESS = 5


def _start_worker(parent_pid: int) -> None:
    worker_initializer(parent_pid)
    _lower_priority()


def _lower_priority() -> None:
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: run at the same priority
        pass


def _extract_in_worker(page: bytes, url: str, options: ExtractOptions) -> Article | None:
    return extract_article(page, url, options=options)
