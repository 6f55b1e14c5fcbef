"""The scheduler registers one refresh job with the intended options, and the pure
next-fetch rules of aggregator.pipeline.next_check; real sleeping only in the one test
that runs the scheduler (well under a second)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from aggregator import scheduler as scheduler_module
from aggregator.config import load_config
from aggregator.pipeline import PipelineContext
from aggregator.pipeline.next_check import (
    SchedulePolicy,
    ServerHints,
    backoff_delay,
    hints_from_headers,
    next_fetch_after_failure,
    next_fetch_after_success,
    parse_retry_after,
    rss_ttl,
)
from aggregator.scheduler import REFRESH_JOB_ID, build_scheduler, run_refresh_job
from aggregator.storage import Storage


def test_refresh_job_runs_at_once_then_every_tick_never_overlapping() -> None:
    scheduler = build_scheduler(MagicMock(), tick=timedelta(seconds=45))
    job = scheduler.get_job(REFRESH_JOB_ID)
    assert job.max_instances == 1
    assert job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=45)
    assert job.next_run_time is not None


def test_ticks_a_slow_refresh_outlasts_are_skipped_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[float] = []
    finished = threading.Event()

    def slow_refresh(ctx: object) -> list[object]:
        runs.append(time.monotonic())
        time.sleep(0.4)  # eight ticks
        finished.set()
        return []

    monkeypatch.setattr(scheduler_module, "refresh_due_feeds", slow_refresh)
    monkeypatch.setattr(scheduler_module, "publish", lambda ctx: None)
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    scheduler = build_scheduler(MagicMock(), tick=timedelta(seconds=0.05))
    scheduler.start()
    try:
        assert finished.wait(timeout=10)
    finally:
        scheduler.shutdown(wait=True)
    assert len(runs) >= 1
    assert "maximum number of running instances" not in caplog.text
    assert "refresh due feeds" in caplog.text  # APScheduler's other messages still pass


def test_a_failing_cycle_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(ctx: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(scheduler_module, "refresh_due_feeds", explode)
    run_refresh_job(MagicMock())
    assert "refresh cycle failed" in caplog.text


def test_the_first_job_after_a_start_writes_the_files_even_with_nothing_due(
    tmp_path: Path, storage: Storage
) -> None:
    # A kill between a refresh's commit and its publish left output_dir behind the
    # database; after the restart no feed is due, yet the files must catch up.
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text("settings:\n  output_dir: out\nfeeds: []\n")
    ctx = PipelineContext.create(load_config(config_path), storage, workers=0)
    try:
        run_refresh_job(ctx)
        assert (tmp_path / "out" / "feed.json").exists()
        (tmp_path / "out" / "feed.json").unlink()
        run_refresh_job(ctx)  # nothing due and already published: nothing to write
        assert not (tmp_path / "out" / "feed.json").exists()
    finally:
        ctx.close()


# --------------------------------------------------------------------------- next fetch
# Issue 3: when to fetch next is a pure function of a fake clock; nothing sleeps.

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HTTP_NOW = "Wed, 25 Nov 2026 12:00:00 GMT"
INTERVAL = timedelta(minutes=30)
NO_JITTER = SchedulePolicy(max_backoff=timedelta(hours=24), jitter=0.0)


def after_success(headers: dict[str, str], ttl: timedelta | None = None) -> timedelta:
    hints = hints_from_headers(headers, NOW, status=200, ttl=ttl)
    return next_fetch_after_success(NOW, INTERVAL, hints, NO_JITTER, rand=0.5) - NOW


@pytest.mark.parametrize(
    ("headers", "ttl", "wait"),
    [
        ({}, None, INTERVAL),
        ({}, timedelta(hours=2), timedelta(hours=2)),  # RSS <ttl> asks for longer
        ({}, timedelta(minutes=5), INTERVAL),  # ... never sooner than our interval
        ({"cache-control": "public, max-age=7200"}, None, timedelta(hours=2)),
        ({"cache-control": "max-age=7200", "age": "3600"}, None, timedelta(hours=1)),
        ({"cache-control": "no-cache, max-age=7200"}, None, INTERVAL),
        ({"cache-control": "max-age=60"}, None, INTERVAL),
        ({"cache-control": "max-age=999999999"}, None, timedelta(hours=24)),  # capped
        ({"date": HTTP_NOW, "expires": "Wed, 25 Nov 2026 15:00:00 GMT"}, None, timedelta(hours=3)),
        ({"date": HTTP_NOW, "expires": "0"}, None, INTERVAL),  # invalid: means "expired"
        ({"date": HTTP_NOW, "expires": "Tue, 24 Nov 2026 15:00:00 GMT"}, None, INTERVAL),
        # The server's clock runs an hour fast: Expires is read against its own Date.
        (
            {"date": "Wed, 25 Nov 2026 13:00:00 GMT", "expires": "Wed, 25 Nov 2026 15:00:00 GMT"},
            None,
            timedelta(hours=2),
        ),
        ({"retry-after": "7200"}, None, INTERVAL),  # ignored on a 200
    ],
)
def test_success_waits_the_interval_or_what_the_publisher_asked(
    headers: dict[str, str], ttl: timedelta | None, wait: timedelta
) -> None:
    assert after_success(headers, ttl) == wait


def after_failure(failures: int, status: int = 500, **headers: str) -> timedelta:
    hints = hints_from_headers(headers, NOW, status=status)
    return next_fetch_after_failure(NOW, INTERVAL, failures, hints, NO_JITTER, rand=0.5) - NOW


@pytest.mark.parametrize(
    ("failures", "wait"),
    [
        (1, timedelta(hours=1)),
        (2, timedelta(hours=2)),
        (5, timedelta(hours=16)),
        (6, timedelta(hours=24)),  # capped at max_backoff
        (1000, timedelta(hours=24)),  # no overflow after years of failures
    ],
)
def test_failures_back_off_exponentially_and_are_capped(failures: int, wait: timedelta) -> None:
    assert after_failure(failures) == wait


@pytest.mark.parametrize(
    ("failures", "wait"),
    [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=2)),
        (3, timedelta(minutes=4)),
        (6, timedelta(minutes=32)),
        (7, timedelta(minutes=64)),
        (11, timedelta(minutes=1024)),
        (12, timedelta(hours=24)),  # capped at max_backoff, like any feed
        (1000, timedelta(hours=24)),
    ],
)
def test_a_feed_never_fetched_retries_within_minutes_then_backs_off(
    failures: int, wait: timedelta
) -> None:
    """Issue 17: a new feed's failed first fetch waited an hour (the interval doubled)."""
    after = next_fetch_after_failure(
        NOW, INTERVAL, failures, ServerHints(), NO_JITTER, rand=0.5, ever_fetched=False
    )
    assert after - NOW == wait


def test_a_never_fetched_feed_still_honours_retry_after_and_short_intervals() -> None:
    hints = hints_from_headers({"retry-after": "10800"}, NOW, status=429)
    after = next_fetch_after_failure(NOW, INTERVAL, 1, hints, NO_JITTER, 0.5, ever_fetched=False)
    assert after - NOW == timedelta(hours=3)
    short = timedelta(seconds=20)  # never later than the ordinary backoff (40 s here)
    after = next_fetch_after_failure(
        NOW, short, 1, ServerHints(), NO_JITTER, 0.5, ever_fetched=False
    )
    assert after - NOW == timedelta(seconds=40)


def test_retry_after_is_a_floor_on_429_and_503_only() -> None:
    assert after_failure(1, 429, **{"retry-after": "10800"}) == timedelta(hours=3)
    assert after_failure(1, 503, **{"retry-after": "60"}) == timedelta(hours=1)  # backoff wins
    later = {"date": HTTP_NOW, "retry-after": "Wed, 25 Nov 2026 16:00:00 GMT"}
    assert after_failure(1, 503, **later) == timedelta(hours=4)
    assert after_failure(1, 500, **{"retry-after": "10800"}) == timedelta(hours=1)
    assert after_failure(1, 429, **{"retry-after": "9" * 30}) == timedelta(hours=24)  # capped
    assert after_failure(1, 429, **{"retry-after": "soon"}) == timedelta(hours=1)


def test_recovery_is_immediate_on_the_first_success() -> None:
    # The failure count lives on the feed's row and is reset by a success, so the
    # next wait after a success is the plain interval again.
    assert after_failure(5) == timedelta(hours=16)
    assert after_success({}) == INTERVAL


def test_a_long_interval_is_never_cut_by_the_backoff_cap() -> None:
    weekly = timedelta(days=7)
    hints = ServerHints()
    after = next_fetch_after_failure(NOW, weekly, 3, hints, NO_JITTER, rand=0.0)
    assert after - NOW == weekly


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_jitter_only_ever_lengthens_the_wait(rand: float) -> None:
    policy = SchedulePolicy(jitter=0.1)
    hints = ServerHints(max_age=timedelta(hours=1))
    wait = next_fetch_after_success(NOW, INTERVAL, hints, policy, rand) - NOW
    assert timedelta(hours=1) <= wait <= timedelta(hours=1, minutes=6)
    assert wait == timedelta(hours=1) * (1 + 0.1 * rand)


def test_jitter_spreads_feeds_that_would_fire_together() -> None:
    policy = SchedulePolicy(jitter=0.1)
    times = {
        next_fetch_after_success(NOW, INTERVAL, ServerHints(), policy, rand / 10)
        for rand in range(10)
    }
    assert len(times) == 10


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(minutes=2)),
        (" 0 ", timedelta(0)),
        ("Wed, 25 Nov 2026 12:30:00 GMT", timedelta(minutes=30)),
        ("Wed, 25 Nov 2026 11:00:00 GMT", timedelta(0)),  # in the past: now
        ("", None),
        ("-5", None),
        ("tomorrow", None),
    ],
)
def test_parse_retry_after(value: str, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<rss><channel><ttl>90</ttl><item/></channel></rss>", timedelta(minutes=90)),
        (b"<rss><channel><ttl> 15 </ttl></channel></rss>", timedelta(minutes=15)),
        (b"<rss><channel><ttl>0</ttl></channel></rss>", None),
        (b"<rss><channel><ttl>soon</ttl></channel></rss>", None),
        (b"<feed><title>no ttl</title></feed>", None),
        (b" " * 70_000 + b"<ttl>60</ttl>", None),  # only the channel head is searched
        # the syndication module: updateFrequency updates per updatePeriod
        (
            b"<rss><channel><sy:updatePeriod>hourly</sy:updatePeriod>"
            b"<sy:updateFrequency>2</sy:updateFrequency></channel></rss>",
            timedelta(minutes=30),
        ),
        (b"<rdf:RDF><channel><sy:updatePeriod> Daily </sy:updatePeriod>", timedelta(days=1)),
        (
            b"<channel><ttl>60</ttl><sy:updatePeriod>daily</sy:updatePeriod>"
            b"<sy:updateFrequency>4</sy:updateFrequency>",
            timedelta(hours=6),  # both given: the longer
        ),
        (
            b"<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>0</sy:updateFrequency>",
            None,
        ),
        (b"<sy:updatePeriod>fortnightly</sy:updatePeriod>", None),
    ],
)
def test_rss_ttl(body: bytes, expected: timedelta | None) -> None:
    assert rss_ttl(body) == expected


def test_backoff_delay_without_failures_is_the_interval() -> None:
    assert backoff_delay(INTERVAL, 0, timedelta(hours=24)) == INTERVAL
