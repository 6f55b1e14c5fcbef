"""Parse big feeds in worker processes, so feedparser's CPU time uses every core.

feedparser holds the GIL: on the fetch threads a 5 MB feed would stall every other
fetch for a second or more. Small feeds (most of them) are parsed inline, where
sending the bytes to a process would cost more than parsing them. The processes are
started on the first big feed only, so a refresh of small feeds never pays for them.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from aggregator.models import FetchResult, ParsedFeed
from aggregator.parse.parser import parse_feed
from aggregator.processes import spawning, worker_initializer

__all__ = ["BIG_FEED_BYTES", "ParsePool"]

# Below this, parsing inline is cheaper than a round trip to a process.
BIG_FEED_BYTES = 256_000


class ParsePool:
    """``parse`` runs feedparser inline or, for big bodies, on ``workers`` processes."""

    def __init__(self, workers: int, *, big: int = BIG_FEED_BYTES) -> None:
        self._workers = workers
        self._big = big
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def parse(self, result: FetchResult, *, now: datetime) -> ParsedFeed:
        """Parse ``result`` (raises ParseError like parse_feed); safe from any thread."""
        if self._workers <= 0 or len(result.content) < self._big:
            return parse_feed(result, now=now)
        with spawning():  # submit() starts a worker when none is free
            future = self._started().submit(parse_feed, result, now=now)
        return future.result()

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # Spawned, not forked: the daemon has threads whose locks a fork would copy.
                context = multiprocessing.get_context("spawn")
                # Workers ignore Ctrl-C and exit when this process dies (processes.py).
                self._executor = ProcessPoolExecutor(
                    self._workers,
                    mp_context=context,
                    initializer=worker_initializer,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
