"""Worker processes that leave Ctrl-C to their parent and die with it (issues 17, 19).

Both process pools (parse/pool.py, extract/pool.py) spawn their workers inside
:func:`spawning` and start each with :func:`worker_initializer`:

* **Ctrl-C.** A terminal sends SIGINT to the whole process group. Workers ignore it:
  the parent stops them itself (pool shutdown), so no worker prints a
  ``KeyboardInterrupt`` traceback or dies mid-task, which the parent would have
  taken for a broken pool. SIGINT is blocked in the spawning thread, so a worker
  still importing its modules is not interrupted either (the mask is inherited; the
  initializer ignores the signal, then unblocks it).
* **SIGTERM.** systemd stops a service by sending SIGTERM to every process of it. A
  worker heeds a SIGTERM only from its parent (the pool ending a broken worker) and
  otherwise leaves the stopping to the parent, which then finishes cleanly instead
  of finding its pool broken and recording failures against the feeds in flight.
* **The parent's death.** A worker blocks on its task queue, whose write end it holds
  itself, so a ``kill -9`` of the parent never wakes it, and multiprocessing's resource
  tracker (which exits when the last holder of its pipe does) lives on with it. Each
  worker therefore exits at once when its parent is gone: on Linux the kernel signals
  it (``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread checks ``os.getppid()`` every
  second.

On Linux one thread takes both signals with ``sigwaitinfo``, which names the sender.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["spawning", "worker_initializer"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Sent by the kernel when the worker's parent *thread* exits; the handler then checks
# whether the parent *process* is gone too (the worker is reparented only then).
_PARENT_DEATH_SIGNAL = signal.SIGUSR1
_TAKEN = {signal.SIGTERM, _PARENT_DEATH_SIGNAL}
# Held from the spawn on: threads that the worker's imports start before its
# initializer runs (numpy's BLAS threads) inherit this mask, and a signal that one
# thread leaves unblocked may be delivered to it. The parent-death signal fires each
# time the thread that spawned the worker ends (a refresh's page thread), and its
# default action kills the worker, which broke the pool for every later refresh.
_HELD_AT_SPAWN = {signal.SIGINT, signal.SIGTERM, _PARENT_DEATH_SIGNAL}
_POLL_SECONDS = 1.0


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while the pool may spawn workers: a
    worker inherits the mask, so neither signal ends it while it is still starting.
    Its initializer then decides what each signal does."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_AT_SPAWN)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def worker_initializer(parent_pid: int, use_prctl: bool = True) -> None:
    """Run first in every worker: ignore SIGINT, heed SIGTERM only from the parent,
    exit when ``parent_pid`` is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if not (use_prctl and _take_signals_on_a_thread(parent_pid)):
        if hasattr(signal, "pthread_sigmask"):
            # as by default (both were held since the spawn)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, _PARENT_DEATH_SIGNAL})
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before anything above was in place
        os._exit(0)


def _take_signals_on_a_thread(parent_pid: int) -> bool:
    """Linux: SIGTERM and the kernel's parent-death signal go to one thread, which
    sees who sent each; False (nothing changed) where that cannot be done."""
    if not sys.platform.startswith("linux") or not hasattr(signal, "sigwaitinfo"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return False
    # Blocked here, so in every thread this worker starts: only sigwaitinfo takes them.
    # (Threads started before this point hold them blocked since the spawn.) Should a
    # thread that unblocked them get the parent-death signal anyway, it is handled,
    # never the default action, which would end the worker.
    signal.pthread_sigmask(signal.SIG_BLOCK, _TAKEN)
    if libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0) != 0:
        return False
    signal.signal(_PARENT_DEATH_SIGNAL, _exit_if_orphaned(parent_pid))
    name = "parent-signals"
    threading.Thread(target=_take_signals, args=(parent_pid,), name=name, daemon=True).start()
    return True


def _exit_if_orphaned(parent_pid: int) -> Callable[[int, FrameType | None], None]:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        if os.getppid() != parent_pid:
            os._exit(0)

    return handle


def _take_signals(parent_pid: int) -> None:
    while True:
        info = signal.sigwaitinfo(_TAKEN)
        if os.getppid() != parent_pid:
            os._exit(0)  # the parent is gone
        if info.si_signo == signal.SIGTERM and info.si_pid == parent_pid:
            os._exit(1)  # the pool ending this worker (a broken pool's clean-up)
        # SIGTERM from anyone else (systemd, a kill of the process group): the parent
        # stops this worker itself. The parent-death signal while the parent lives:
        # only the thread that started this worker has ended.


def _watch_parent(parent_pid: int) -> None:
    """The portable way: a thread that ends the process once it has a new parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
