"""The extraction worker pool: trafilatura on worker processes, one per core.

trafilatura holds the GIL, so threads would not use the second core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any, TypeVar

from aggregator.extract.body import BodyJob, Describe, PreparedBody, prepare_body
from aggregator.extract.options import DEFAULT_OPTIONS, ExtractOptions
from aggregator.models import Article
from aggregator.processes import spawning, worker_initializer

log = logging.getLogger(__name__)
Result = TypeVar("Result")


class ExtractionPool:
    """Runs ``extract_article`` (or a new article's whole body preparation:
    ``body.prepare_body``) on worker processes (one per core), or inline if workers=0.

    Workers are spawned, not forked: the daemon has threads (scheduler, server) and a
    forked child could inherit a held lock. They ignore Ctrl-C and exit when this
    process dies (processes.py). A worker that dies is replaced: its pages are tried
    once more on new workers, then given no text (the feed's own text is used).
    ``release()`` lets the workers exit (their memory back to the system); the next
    job starts new ones.
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._executor: Executor | None = None  # started by the first job (_started)
        self._closed = False

    def _new_executor(self) -> Executor:
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self._workers,
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
        jobs = [(page, url, opts) for (page, url), opts in zip(pages, per_page, strict=True)]
        return self._run(_extract_in_worker, jobs, lambda _: None)

    def prepare_many(self, jobs: Iterable[BodyJob], describe: Describe) -> Iterator[PreparedBody]:
        """``body.prepare_body`` of each job on the workers (results in input order): the
        process storing the articles receives each body chosen, its language found and
        its features (``describe``) computed. When the workers keep dying, a job is
        prepared here without its page (the feed's text)."""
        return self._run(
            _prepare_in_worker,
            [(job, describe) for job in jobs],
            lambda args: prepare_body(_without_page(args[0]), args[1]),
        )

    def _run(
        self,
        function: Callable[..., Result],
        jobs: Sequence[tuple[Any, ...]],
        fallback: Callable[[tuple[Any, ...]], Result],
    ) -> Iterator[Result]:
        """``function(*job)`` for each job on the workers, or inline without workers;
        ``fallback(job)`` for every job when the workers died twice."""
        if self._workers <= 0:
            return (function(*job) for job in jobs)
        columns = list(zip(*jobs, strict=True)) if jobs else []
        for attempt in (1, 2):
            executor = self._started()
            if executor is None:  # closed meanwhile: the process is stopping
                break
            try:
                with spawning():  # map() starts the workers it needs
                    results = executor.map(function, *columns, chunksize=self._chunk(len(jobs)))
                return iter(list(results))  # waited for here, signals unblocked
            except BrokenProcessPool:
                # A worker died (the OOM killer, a crash in a parser): the executor is
                # unusable for good, so start a new one and try these pages once more.
                log.warning("an extraction worker died; starting new ones (try %d)", attempt)
                self._replace(executor)
        # Twice broken (a page that kills its worker?): these pages get the feed's text.
        return iter([fallback(job) for job in jobs])

    def _chunk(self, jobs: int) -> int:
        """Jobs sent to a worker at once: a feed's pages in about two chunks per
        worker. Each message between the processes costs the storing process's helper
        threads a wake-up and a pickling (~0.2 ms a page with one page per message);
        two chunks a worker keep both busy however the pages' costs differ."""
        return max(1, jobs // (2 * self._workers))

    def _started(self) -> Executor | None:
        """The executor, a new one after ``release()``; None once closed."""
        with self._lock:
            if self._executor is None and not self._closed:
                self._executor = self._new_executor()
            return self._executor

    def _replace(self, broken: Executor) -> None:
        with self._lock:
            if self._executor is broken:  # not already replaced by another thread
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()

    def release(self) -> None:
        """Let the workers exit once their jobs are done: a refresh that extracts no
        more pages gives their memory back (about 120 MB each) before its refinement,
        its memory peak. A later job starts new workers (a second or so each). Not
        waited for: they exit while the caller goes on (a quarter of a second)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

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
    from aggregator.extract.extractor import extract_article  # trafilatura: workers only

    return extract_article(page, url, options=options)


def _prepare_in_worker(job: BodyJob, describe: Describe) -> PreparedBody:
    return prepare_body(job, describe)


def _without_page(job: BodyJob) -> BodyJob:
    if job.page is None:
        return job
    return replace(job, page=None, reason="the extraction worker died on this page")
