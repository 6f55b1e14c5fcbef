"""Renders off the server's event loop (issue 19): a few worker threads, each with its
own read connection to the database, and a bound on the renders waiting for them.

Rendering a slice nobody asked for before reads and serialises up to 1,000 stories;
done on the event loop it stalled every other request, ``/healthz`` included (16
clients asking for distinct slices pushed its median to 8 s). On these threads the
loop stays free: a render costs the loop only the GIL switches it shares with them.
SQLite connections are not shared between threads, so each thread opens its own
(WAL: readers never wait for the writer, nor for one another).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from aggregator.storage import Storage

__all__ = ["RENDER_THREADS", "RenderPool"]

# Rendering is mostly Python (the GIL): more threads would not render faster, only
# take more turns from the event loop. Two keep one render going while the other
# waits on SQLite or gzip, which release the GIL.
RENDER_THREADS = 2

T = TypeVar("T")


class RenderPool:
    """Run ``work(storage)`` on a worker thread with that thread's own connection."""

    def __init__(self, database_path: Path, threads: int = RENDER_THREADS) -> None:
        self._path = database_path
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="render")
        self._local = threading.local()
        self._opened: list[Storage] = []
        self._lock = threading.Lock()

    async def run(self, work: Callable[[Storage], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._storage()))

    def _storage(self) -> Storage:
        storage: Storage | None = getattr(self._local, "storage", None)
        if storage is None:
            # Closed from the thread that shuts the pool down, after this one is done.
            storage = Storage.open(self._path, check_same_thread=False)
            self._local.storage = storage
            with self._lock:
                self._opened.append(storage)
        return storage

    def close(self) -> None:
        """Wait for the renders under way, then close every thread's connection."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for storage in self._opened:
                storage.close()
            self._opened.clear()
