"""When to fetch a feed next: pure functions of the clock, the feed's interval, what the
publisher asked for, and how often the feed has failed.

Nothing here reads a clock or a random source: callers pass ``now`` and a random
number in [0, 1), so tests use fixed values and never sleep.

The rules, Miniflux-style but stricter about honouring the publisher:

* After a success, wait the feed's interval, or longer if the publisher asked for it
  (RSS ``<ttl>`` or the syndication module's ``sy:updatePeriod`` / ``sy:updateFrequency``,
  ``Cache-Control: max-age`` minus ``Age``, ``Expires``), never sooner.
* After a failure, wait the interval doubled per consecutive failure, capped at
  ``max_backoff``; a ``Retry-After`` on 429/503 is a floor under that. A feed that has
  never been fetched successfully (a new feed, a typo being fixed) starts from
  ``FIRST_RETRY`` instead of its interval: 1, 2, 4, 8… minutes, never longer than the
  ordinary backoff.
* Whatever the publisher asks, the wait is capped at ``max(max_backoff, interval)``:
  a hostile ``max-age=31536000`` must not silence a feed for a year.
* Jitter only ever lengthens the wait (by up to ``jitter`` of it), so it spreads feeds
  that would fire together without ever fetching sooner than asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "FIRST_RETRY",
    "SchedulePolicy",
    "ServerHints",
    "backoff_delay",
    "hints_from_headers",
    "next_fetch_after_failure",
    "next_fetch_after_success",
    "parse_retry_after",
    "rss_ttl",
]

# The first wait after a failure of a feed never fetched successfully (issue 17: a new
# feed's failed first fetch waited an hour, twice the default interval).
FIRST_RETRY = timedelta(minutes=1)
# Statuses whose Retry-After means "come back later" (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# Only the head of a feed is searched for <ttl>: it belongs to the channel, before items.
TTL_SEARCH_BYTES = 65_536
_TTL = re.compile(rb"<(?:\w+:)?ttl>\s*(\d{1,7})\s*</(?:\w+:)?ttl>", re.IGNORECASE)
# The RSS syndication module (http://purl.org/rss/1.0/modules/syndication/): updates
# happen updateFrequency times (default 1) per updatePeriod.
_UPDATE_PERIOD = re.compile(
    rb"<(?:\w+:)?updatePeriod>\s*(hourly|daily|weekly|monthly|yearly)\s*</", re.IGNORECASE
)
_UPDATE_FREQUENCY = re.compile(rb"<(?:\w+:)?updateFrequency>\s*(\d{1,6})\s*</", re.IGNORECASE)
_PERIODS = {
    b"hourly": timedelta(hours=1),
    b"daily": timedelta(days=1),
    b"weekly": timedelta(weeks=1),
    b"monthly": timedelta(days=30),
    b"yearly": timedelta(days=365),
}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$|=)", re.IGNORECASE)


@dataclass(frozen=True)
class SchedulePolicy:
    """The service's own limits (from settings)."""

    max_backoff: timedelta = timedelta(hours=24)
    jitter: float = 0.1  # fraction of the wait added at random, 0 to switch it off


@dataclass(frozen=True)
class ServerHints:
    """What the publisher said about when to come back; None where it said nothing."""

    ttl: timedelta | None = None  # RSS <ttl> or sy:updatePeriod / sy:updateFrequency
    max_age: timedelta | None = None  # Cache-Control: max-age, less Age
    expires_in: timedelta | None = None  # Expires, less Date
    retry_after: timedelta | None = None  # Retry-After (honoured on 429/503 only)

    @property
    def fresh_for(self) -> timedelta | None:
        """The longest freshness the publisher claimed, if any."""
        claims = [hint for hint in (self.ttl, self.max_age, self.expires_in) if hint is not None]
        return max(claims, default=None)


def next_fetch_after_success(
    now: datetime,
    interval: timedelta,
    hints: ServerHints,
    policy: SchedulePolicy,
    rand: float,
) -> datetime:
    """The next fetch after a 200 or 304: the interval, or what the publisher asked."""
    wait = max(interval, hints.fresh_for or timedelta(0))
    return now + _jittered(_capped(wait, interval, policy), policy, rand)


def next_fetch_after_failure(
    now: datetime,
    interval: timedelta,
    failures: int,
    hints: ServerHints,
    policy: SchedulePolicy,
    rand: float,
    *,
    ever_fetched: bool = True,
) -> datetime:
    """The next fetch after the ``failures``-th failure in a row (1 for the first);
    sooner while the feed has never been fetched successfully."""
    backoff = backoff_delay(interval, failures, policy.max_backoff)
    if not ever_fetched:
        backoff = min(backoff_delay(FIRST_RETRY, failures - 1, policy.max_backoff), backoff)
    wait = max(backoff, hints.retry_after or timedelta(0))
    return now + _jittered(_capped(wait, interval, policy), policy, rand)


def backoff_delay(interval: timedelta, failures: int, max_backoff: timedelta) -> timedelta:
    """The interval doubled per consecutive failure, capped at ``max(max_backoff, interval)``."""
    if failures <= 0:
        return interval
    # The shift is bounded so a feed failing for years does not build a huge number.
    return min(interval * (1 << min(failures, 32)), max(max_backoff, interval))


def _capped(wait: timedelta, interval: timedelta, policy: SchedulePolicy) -> timedelta:
    return min(wait, max(policy.max_backoff, interval))


def _jittered(wait: timedelta, policy: SchedulePolicy, rand: float) -> timedelta:
    fraction = min(max(policy.jitter, 0.0), 1.0) * min(max(rand, 0.0), 1.0)
    return wait + wait * fraction


# --------------------------------------------------------------------------- reading hints


def hints_from_headers(
    headers: Mapping[str, str], now: datetime, *, status: int, ttl: timedelta | None = None
) -> ServerHints:
    """Read the publisher's timing hints from response headers (keys in lower case)."""
    server_now = _http_date(headers.get("date", "")) or now
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(headers.get("retry-after", ""), server_now)
    return ServerHints(
        ttl=ttl,
        max_age=_max_age(headers),
        expires_in=_expires_in(headers, server_now),
        retry_after=retry_after,
    )


def parse_retry_after(value: str, now: datetime) -> timedelta | None:
    """``Retry-After`` as a wait: delta-seconds or an HTTP date; None if absent or invalid."""
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=min(int(value), 10**9))
    moment = _http_date(value)
    if moment is None:
        return None
    return max(moment - now, timedelta(0))


def rss_ttl(content: bytes) -> timedelta | None:
    """How long the feed says it stays fresh, from the head of its body: the channel's
    ``<ttl>`` (minutes), or ``sy:updatePeriod`` divided by ``sy:updateFrequency``; the
    longer if it gives both, None if neither (or a zero)."""
    head = content[:TTL_SEARCH_BYTES]
    claims = []
    ttl = _TTL.search(head)
    if ttl is not None and int(ttl[1]) > 0:
        claims.append(timedelta(minutes=int(ttl[1])))
    period = _UPDATE_PERIOD.search(head)
    if period is not None:
        frequency = _UPDATE_FREQUENCY.search(head)
        times = int(frequency[1]) if frequency is not None else 1
        if times > 0:
            claims.append(_PERIODS[period[1].lower()] / times)
    return max(claims, default=None)


def _max_age(headers: Mapping[str, str]) -> timedelta | None:
    control = headers.get("cache-control", "")
    match = _MAX_AGE.search(control)
    if match is None or _NO_CACHE.search(control):
        return None
    age = headers.get("age", "").strip()
    already = int(age) if age.isdigit() else 0
    return timedelta(seconds=max(int(match[1]) - already, 0))


def _expires_in(headers: Mapping[str, str], server_now: datetime) -> timedelta | None:
    # Expires is measured against the server's own Date, so a skewed clock on either
    # side does not matter. An invalid or past Expires ("0", "-1") says nothing.
    expires = _http_date(headers.get("expires", ""))
    if expires is None or expires <= server_now:
        return None
    return expires - server_now


def _http_date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
