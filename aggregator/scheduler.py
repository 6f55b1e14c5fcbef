"""The scheduler: when to run the pipeline. It holds no pipeline logic itself.

One APScheduler interval job ("refresh") wakes up every ``TICK`` and refreshes the
feeds that storage says are due. When each feed is due lives in its ``next_check_at``
column, Miniflux-style, computed after every fetch by the pure rules of
:mod:`aggregator.pipeline.next_check` (interval, the publisher's ttl/Cache-Control/Expires/
Retry-After, backoff, jitter); a feed stopped by 410 Gone is never due. The politeness
limits (per host, overall) are applied by the pipeline's fetcher, not here.
``max_instances=1`` and ``coalesce=True`` mean a slow refresh is never run twice at
once nor replayed; the ticks it outlasts are skipped quietly (APScheduler would warn
at each one, every 30 s of a long first refresh, about what is the design).

A cycle that fails as a whole (the database cannot be written: a full disk) is logged
in one line and kept in :class:`CycleHealth` for ``/healthz`` until a cycle succeeds;
the next cycles wait longer each time (two ticks, doubling, at most
``MAX_CYCLE_BACKOFF``), so publishers are not fetched every tick for nothing (issue 19).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.errors import StorageError
from aggregator.pipeline import (
    PipelineContext,
    publish,
    refine_if_due,
    refresh_due_feeds,
    summarize,
)
from aggregator.pipeline.prune import PRUNE_FIRST_DELAY, PRUNE_INTERVAL, run_prune_job

log = logging.getLogger(__name__)

TICK = timedelta(seconds=30)
REFRESH_JOB_ID = "refresh"
PRUNE_JOB_ID = "prune"
MAX_CYCLE_BACKOFF = timedelta(minutes=15)


@dataclass
class CycleHealth:
    """Why refresh cycles fail as a whole (the database, not one feed), until one
    succeeds; and when the next may run."""

    tick: timedelta = TICK
    error: str | None = None
    failed_at: datetime | None = None
    failures: int = 0
    retry_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def waiting(self, now: datetime) -> bool:
        with self._lock:
            return self.retry_at is not None and now < self.retry_at

    def failed(self, now: datetime, error: str) -> datetime:
        """Record a failed cycle; returns when the next may run."""
        with self._lock:
            self.failures += 1
            wait = min(self.tick * 2 ** min(self.failures, 20), MAX_CYCLE_BACKOFF)
            self.error, self.failed_at, self.retry_at = error, now, now + wait
            return self.retry_at

    def succeeded(self) -> None:
        with self._lock:
            self.error, self.failed_at, self.retry_at, self.failures = None, None, None, 0

    def report(self) -> dict[str, Any]:
        """``refresh`` in /healthz; an ``error`` makes the service degraded."""
        with self._lock:
            return {
                "error": self.error,
                "failed_at": _iso(self.failed_at),
                "consecutive_failures": self.failures,
                "next_try": _iso(self.retry_at),
            }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


class _QuietSkippedTicks(logging.Filter):
    """Drops APScheduler's warning for a tick skipped because the job is still running."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_QUIET_SKIPPED_TICKS = _QuietSkippedTicks()


def build_scheduler(
    ctx: PipelineContext, *, tick: timedelta = TICK, health: CycleHealth | None = None
) -> BackgroundScheduler:
    """A scheduler with the refresh job registered; the first run is immediate."""
    # Added once, however often this is called (addFilter skips a filter it holds).
    logging.getLogger("apscheduler.scheduler").addFilter(_QUIET_SKIPPED_TICKS)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        run_refresh_job,
        "interval",
        args=[ctx, health or CycleHealth(tick)],
        seconds=tick.total_seconds(),
        id=REFRESH_JOB_ID,
        name="refresh due feeds",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    scheduler.add_job(  # retention (issue 7); opens its own connection
        run_prune_job,
        "interval",
        args=[ctx],
        seconds=PRUNE_INTERVAL.total_seconds(),
        id=PRUNE_JOB_ID,
        name="prune aged-out stories",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC) + PRUNE_FIRST_DELAY,
    )
    return scheduler


def run_refresh_job(ctx: PipelineContext, health: CycleHealth | None = None) -> None:
    """Refresh due feeds; never let an exception escape into the scheduler."""
    health = health or CycleHealth()
    if health.waiting(datetime.now(UTC)):
        return
    try:
        outcomes = refresh_due_feeds(ctx)
        if outcomes:
            log.info(summarize(outcomes))
        # Articles an earlier tick placed wait for the refinement until refine_every has
        # passed, whether or not this tick found anything due (a no-op when it refined).
        refined = refine_if_due(ctx)
        # Also once after a start: a kill between a refresh's commit and its publish
        # must not leave the files in output_dir behind the database until the next change.
        if outcomes or refined or not ctx.published:
            publish(ctx)
        if health.error:
            log.info("refresh cycles work again (after: %s)", health.error)
        health.succeeded()
    except StorageError as exc:  # the database, not one feed: say it in one line
        retry_at = health.failed(datetime.now(UTC), str(exc))
        log.error(
            "refresh cycle failed: %s; still serving, next try at %s",
            exc,
            retry_at.isoformat(timespec="seconds"),
        )
    except Exception:
        log.exception("refresh cycle failed; will retry on the next tick")
