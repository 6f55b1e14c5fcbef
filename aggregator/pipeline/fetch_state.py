"""Each fetch's outcome, recorded on the feed's row: success (validators, the next
check from the publisher's hints), failure (backoff, Retry-After), or 410 Gone
(polling stops until an admin resets the feed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator import metrics
from aggregator.errors import AggregatorError, HTTPStatusError
from aggregator.models import BodyFacts, FeedState, FetchResult, ParsedFeed
from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.next_check import (
    ServerHints,
    hints_from_headers,
    next_fetch_after_failure,
    next_fetch_after_success,
)

log = logging.getLogger(__name__)


GONE_STATUS = 410


@dataclass(frozen=True)
class RefreshOutcome:
    """What one feed's refresh did, for logs and the CLI summary."""

    url: str
    name: str
    status: str  # "ok", "not-modified" or "failed"
    new_articles: int = 0
    error: str = ""
    updated_articles: int = 0
    moved_to: str = ""  # a permanent redirect the admin should copy into feeds.yaml


def record_failure(
    ctx: PipelineContext,
    state: FeedState,
    error: AggregatorError | None,
    now: datetime,
    interval: timedelta,
) -> RefreshOutcome:
    message = str(error) if error else "unknown error"
    status = error.status if isinstance(error, HTTPStatusError) else None
    if status == GONE_STATUS:
        return _record_gone(ctx, state, message, now)
    failures = state.consecutive_failures + 1
    hints = ServerHints()
    if isinstance(error, HTTPStatusError):
        hints = hints_from_headers(error.headers, now, status=error.status)
    next_check = next_fetch_after_failure(
        now, interval, failures, hints, ctx.policy, ctx.rand(), ever_fetched=state.ever_fetched
    )
    ctx.storage.record_fetch_failure(
        state.id, now=now, next_check=next_check, error=message, status=status
    )
    metrics.FEED_FETCHES.labels("failed").inc()
    log.warning(
        "%s: failed (%s); attempt %d, next try at %s (%s)",
        state.name,
        message,
        failures,
        next_check.isoformat(timespec="minutes"),
        state.url,
    )
    return RefreshOutcome(state.url, state.name, "failed", error=message)


def _record_gone(
    ctx: PipelineContext, state: FeedState, message: str, now: datetime
) -> RefreshOutcome:
    """410 Gone: the publisher says the feed will never come back; stop polling it."""
    reason = f"{message}: polling stopped; fix feeds.yaml or run `aggregator feeds --reset`"
    ctx.storage.record_fetch_failure(
        state.id,
        now=now,
        next_check=None,
        error=message,
        status=GONE_STATUS,
        disabled_reason=reason,
    )
    metrics.FEED_FETCHES.labels("gone").inc()
    log.error("%s: %s (%s)", state.name, reason, state.url)
    return RefreshOutcome(state.url, state.name, "failed", error=reason)


def record_success(
    ctx: PipelineContext,
    state: FeedState,
    result: FetchResult,
    now: datetime,
    interval: timedelta,
    parsed: ParsedFeed | None = None,
    body: BodyFacts | None = None,
) -> None:
    if result.permanent_redirect:
        log.warning(
            "%s: feed moved permanently to %s; update feeds.yaml",
            state.name,
            result.permanent_redirect,
        )
    ttl_seconds = body.ttl_seconds if body else state.ttl_seconds
    ttl = timedelta(seconds=ttl_seconds) if ttl_seconds else None
    hints = hints_from_headers(result.headers, now, status=result.status, ttl=ttl)
    ctx.storage.record_fetch_success(
        state.id,
        now=now,
        next_check=next_fetch_after_success(now, interval, hints, ctx.policy, ctx.rand()),
        status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        title=parsed.title if parsed else None,
        site_url=parsed.site_url if parsed else None,
        permanent_url=result.permanent_redirect,
        body=body,
        bytes_saved=(state.body_bytes or 0) if result.not_modified else 0,
    )
