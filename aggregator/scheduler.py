"""The scheduler: when to run the pipeline. It holds no pipeline logic itself.

One APScheduler interval job ("refresh") wakes up every ``TICK`` and refreshes the
feeds that storage says are due. When each feed is due lives in its ``next_check_at``
column, Miniflux-style, computed after every fetch by the pure rules of
:mod:`aggregator.pipeline.next_check` (interval, the publisher's ttl/Cache-Control/Expires/
Retry-After, backoff, jitter); a feed stopped by 410 Gone is never due. The politeness
limits (per host, overall) are applied by the pipeline's fetcher, not here.
``max_instances=1`` and ``coalesce=True`` mean a slow refresh is never run twice at
once nor replayed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.pipeline import PipelineContext, publish, refresh_due_feeds, summarize
from aggregator.pipeline.prune import PRUNE_FIRST_DELAY, PRUNE_INTERVAL, run_prune_job

log = logging.getLogger(__name__)

TICK = timedelta(seconds=30)
REFRESH_JOB_ID = "refresh"
PRUNE_JOB_ID = "prune"


def build_scheduler(ctx: PipelineContext, *, tick: timedelta = TICK) -> BackgroundScheduler:
    """A scheduler with the refresh job registered; the first run is immediate."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        run_refresh_job,
        "interval",
        args=[ctx],
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


def run_refresh_job(ctx: PipelineContext) -> None:
    """Refresh due feeds; never let an exception escape into the scheduler."""
    try:
        outcomes = refresh_due_feeds(ctx)
        if outcomes:
            log.info(summarize(outcomes))
        # Also once after a start: a kill between a refresh's commit and its publish
        # must not leave the files in output_dir behind the database until the next change.
        if outcomes or not ctx.published:
            publish(ctx)
    except Exception:
        log.exception("refresh cycle failed; will retry on the next tick")
