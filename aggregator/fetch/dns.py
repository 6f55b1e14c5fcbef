"""Name lookups inside the request's limits.

getaddrinfo cannot be interrupted, so each lookup runs on a thread of a small pool and
the fetch stops waiting for it once its connect timeout or the request's deadline
passes (``LookupTimeout``). Lookups stuck on a dead DNS server hold a parked thread,
never a fetch, and never the other feeds' lookups: the pool grows when a lookup would
otherwise wait.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait

import httpcore

from aggregator.fetch.deadline import time_left

Resolver = Callable[[str, int], list[str]]
# Threads that run name lookups for every fetch (see lookup): one is added whenever a
# lookup would otherwise wait, up to this many. One stuck on a hanging DNS server stays
# stuck until the system resolver gives up (its fetch does not), so a few dead names
# must not leave the other feeds' lookups queued behind them.
LOOKUP_THREADS = 64
LOOKUP_IDLE_SECONDS = 30.0  # a lookup thread with nothing to do this long ends


class LookupTimeout(httpcore.ConnectTimeout):
    """A name lookup gave no answer before the connect timeout or the deadline."""


def lookup(host: str, port: int, resolve: Resolver, timeout: float | None) -> list[str]:
    """``resolve(host, port)``, given up (LookupTimeout) once ``timeout`` or this
    thread's request deadline passes; without either it simply runs here."""
    try:
        left = time_left(timeout, LookupTimeout)
    except LookupTimeout as exc:
        raise LookupTimeout(f"could not resolve {host}: {exc}") from None
    if left is None:
        return resolve(host, port)
    future = _LOOKUPS.submit(lambda: resolve(host, port))
    done, _ = wait([future], timeout=left)
    if not done:
        future.cancel()  # still queued behind stuck lookups: it never starts
        raise LookupTimeout(f"could not resolve {host}: no answer within {left:.2g}s")
    return future.result()


class LookupPool:
    """Daemon threads that run name lookups, so the fetch asking can stop waiting.

    A thread is started whenever a lookup comes and none is free, up to ``most``; a
    thread idle for ``idle_seconds`` ends. Not a ThreadPoolExecutor: that one starts a
    thread only below its size whatever the others are doing, and the interpreter joins
    its threads at exit, so a lookup hanging on a dead DNS server would hold up the
    daemon's shutdown.
    """

    def __init__(self, most: int, idle_seconds: float = LOOKUP_IDLE_SECONDS) -> None:
        self._most = most
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._threads = 0  # running
        self._idle = 0  # waiting for a job
        self._queued = 0  # submitted, not yet taken
        self._started = 0  # ever, for the threads' names
        self._jobs: queue.SimpleQueue[tuple[Future[list[str]], Callable[[], list[str]]]] = (
            queue.SimpleQueue()
        )

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, lookup: Callable[[], list[str]]) -> Future[list[str]]:
        future: Future[list[str]] = Future()
        with self._lock:
            self._jobs.put((future, lookup))
            self._queued += 1
            if self._queued > self._idle and self._threads < self._most:
                self._threads += 1
                self._started += 1
                name = f"lookup-{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                future, lookup = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    # a job put since the timeout counted on this thread being idle
                    if self._queued <= self._idle:
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if not future.set_running_or_notify_cancel():
                continue  # its fetch gave up before it started
            try:
                future.set_result(lookup())
            except BaseException as exc:  # handed to the fetch waiting for it
                future.set_exception(exc)


_LOOKUPS = LookupPool(LOOKUP_THREADS)


def system_addresses(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses socket.create_connection would try, looked up within the limits."""
    try:
        return lookup(host, port, _connect_addresses, timeout)
    except OSError as exc:  # as httpcore maps create_connection's errors
        raise httpcore.ConnectError(str(exc)) from exc


def _connect_addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
