"""The scheduler registers one refresh job with the intended options; no real sleeping."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import MagicMock

import pytest

from aggregator import scheduler as scheduler_module
from aggregator.scheduler import REFRESH_JOB_ID, build_scheduler, run_refresh_job


def test_refresh_job_runs_at_once_then_every_tick_never_overlapping() -> None:
    scheduler = build_scheduler(MagicMock(), tick=timedelta(seconds=45))
    job = scheduler.get_job(REFRESH_JOB_ID)
    assert job.max_instances == 1
    assert job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=45)
    assert job.next_run_time is not None


def test_a_failing_cycle_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(ctx: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(scheduler_module, "refresh_due_feeds", explode)
    run_refresh_job(MagicMock())
    assert "refresh cycle failed" in caplog.text
