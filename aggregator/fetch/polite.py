"""Politeness: how many fetches run at once, overall and per site.

``polite_map`` runs feed fetches on a thread pool, never more than ``per_host`` at
once for one site; ``HostSlots`` caps the article pages downloaded at once from one
site over every feed in flight.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from aggregator.errors import Stopped

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def host_key(url: str) -> str:
    """What the per-host limit counts connections by: scheme, host and port."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"


def polite_map(
    items: Iterable[Item],
    work: Callable[[Item], Result],
    *,
    key: Callable[[Item], Hashable],
    concurrency: int,
    per_host: int,
    stop: threading.Event | None = None,
    ahead: int | None = None,
) -> Iterator[Result]:
    """Run ``work`` over ``items`` on ``concurrency`` threads, never more than ``per_host``
    at once for items with the same ``key``; yield results as they complete.

    A host with many feeds waits its turn without holding a thread, so one slow site
    cannot starve the others. ``work`` must not raise. Once ``stop`` is set nothing new
    starts; the generator ends after the items in flight. ``ahead``: at most this many
    results done or in flight that the caller has not taken yet (None: no bound), so
    work runs at the pace the caller takes it rather than all at the start.
    """
    slots = max(1, concurrency)
    pending = sys.maxsize if ahead is None else max(1, ahead)
    dispatcher = _PoliteDispatcher(work, key, max(1, per_host), stop, slots, pending)
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="fetch") as pool:
        dispatcher.start(pool, items)
        try:
            yield from dispatcher.results()
        finally:  # the caller stopped early (or raised): start nothing more
            dispatcher.halt()


class _PoliteDispatcher(Generic[Item, Result]):
    """Hands items to the pool as threads and hosts free up (see ``polite_map``)."""

    def __init__(
        self,
        work: Callable[[Item], Result],
        key: Callable[[Item], Hashable],
        per_host: int,
        stop: threading.Event | None,
        slots: int,
        pending: int,
    ) -> None:
        self._work = work
        self._key = key
        self._per_host = per_host
        self._stop = stop or threading.Event()
        self._slots = slots  # threads: items in flight at most
        self._pending = pending  # items started whose result was not taken, at most
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, deque[Item]] = {}
        self._ready: deque[Hashable] = deque()  # hosts with waiting items and a free slot
        self._busy: Counter[Hashable] = Counter()
        self._in_flight = 0
        self._outstanding = 0  # items started whose result the caller has not taken
        self._halted = False
        self._ended = False
        self._done: queue.SimpleQueue[Result | None] = queue.SimpleQueue()

    def start(self, pool: ThreadPoolExecutor, items: Iterable[Item]) -> None:
        self._pool = pool
        for item in items:
            host = self._key(item)
            if host not in self._waiting:
                self._waiting[host] = deque()
                self._ready.append(host)
            self._waiting[host].append(item)
        with self._lock:
            for _ in range(self._slots):
                self._submit_next()
            self._end_if_done()

    def halt(self) -> None:
        self._halted = True

    def results(self) -> Iterator[Result]:
        while (result := self._done.get()) is not None:
            with self._lock:  # taken: room for one more
                self._outstanding -= 1
                self._submit_next()
                self._end_if_done()
            yield result

    def _end_if_done(self) -> None:
        """Queue the end once nothing is in flight and nothing more will start (call with
        the lock held): after every result already queued."""
        if self._ended or self._in_flight:
            return
        if self._ready and not (self._halted or self._stop.is_set()):
            return  # items wait for the caller to take results (``ahead``)
        self._ended = True
        self._done.put(None)

    def _submit_next(self) -> None:
        """Start the next item whose host has a free slot, if a thread is free and the
        caller is not ``ahead`` behind (call with the lock held)."""
        if self._halted or self._stop.is_set() or not self._ready:
            return
        if self._in_flight >= self._slots or self._outstanding >= self._pending:
            return
        host = self._ready.popleft()
        item = self._waiting[host].popleft()
        self._busy[host] += 1
        if self._waiting[host] and self._busy[host] < self._per_host:
            self._ready.append(host)
        self._in_flight += 1
        self._outstanding += 1
        self._pool.submit(self._run, host, item)

    def _run(self, host: Hashable, item: Item) -> None:
        """On a pool thread: do the work, then free the slot and start the next item."""
        failed = False
        try:  # queued at once, without waiting for the lock: results come in the
            self._done.put(self._work(item))  # order they are done
        except Exception:  # a bug in ``work``: lose this item, never the whole batch
            logger.exception("fetch worker failed")
            failed = True
        with self._lock:
            if failed:  # no result for the caller to take
                self._outstanding -= 1
            self._busy[host] -= 1
            if self._waiting[host] and self._busy[host] == self._per_host - 1:
                self._ready.append(host)
            self._in_flight -= 1
            self._submit_next()
            self._end_if_done()


# How often a thread waiting for a site's slot looks at the stop event.
STOP_POLL_SECONDS = 0.1


class HostSlots:
    """At most ``limit`` holders at once per site (``host_key``), over every thread that
    shares this object: the article pages of all the feeds in flight share one, so a
    site's pages wait their turn whichever feed listed them.

    ``with slots.hold(url, stop=event):`` waits for a free slot. A thread that has to
    wait gives up with Stopped once ``stop`` is set. One counter per site, made when
    first needed and dropped when idle; ``limit`` may change at any time (holders
    above a lowered limit finish, newcomers wait).
    """

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = max(1, limit)
        self._sites: dict[str, _Site] = {}

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        with self._lock:
            self._limit = max(1, value)
            for site in self._sites.values():
                site.freed.notify_all()

    def waiting(self, url: str) -> int:
        """Threads waiting for a slot on ``url``'s site now."""
        with self._lock:
            site = self._sites.get(host_key(url))
            return site.waiting if site else 0

    @contextmanager
    def hold(self, url: str, *, stop: threading.Event | None = None) -> Iterator[None]:
        key = host_key(url)
        self._acquire(key, stop)
        try:
            yield
        finally:
            self._release(key)

    def _acquire(self, key: str, stop: threading.Event | None) -> None:
        with self._lock:
            site = self._sites.get(key)
            if site is None:
                site = self._sites[key] = _Site(threading.Condition(self._lock))
            if site.busy < self._limit:
                site.busy += 1
                return
            site.waiting += 1
            try:
                while True:
                    if stop is not None and stop.is_set():
                        raise Stopped(f"stopping: gave up waiting for a slot on {key}")
                    if site.busy < self._limit:
                        break
                    site.freed.wait(STOP_POLL_SECONDS if stop is not None else None)
                site.busy += 1
            finally:
                site.waiting -= 1
                self._forget_if_idle(key, site)

    def _release(self, key: str) -> None:
        with self._lock:
            site = self._sites[key]
            site.busy -= 1
            if site.waiting:
                site.freed.notify()
            self._forget_if_idle(key, site)

    def _forget_if_idle(self, key: str, site: _Site) -> None:
        if not site.busy and not site.waiting:
            del self._sites[key]


@dataclass
class _Site:
    """One site's slots (guarded by HostSlots' lock, which ``freed`` shares)."""

    freed: threading.Condition
    busy: int = 0
    waiting: int = 0
