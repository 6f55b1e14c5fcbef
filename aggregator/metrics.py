"""Prometheus metrics: counters the pipeline bumps, gauges read from storage per scrape.

One registry of our own (not prometheus_client's global one), so importing this module
twice in tests or registering nothing else never collides. The daemon runs the
scheduler and the server in one process, so ``/metrics`` sees the pipeline's counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "ARTICLES_EXTRACTED",
    "CONTENT_TYPE",
    "ENTRIES_UPDATED",
    "FEED_FETCHES",
    "FETCH_SECONDS",
    "REGISTRY",
    "StorageCollector",
    "StorageFacts",
    "render",
]

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

FEED_FETCHES = Counter(
    "aggregator_feed_fetches",
    "Feed fetches by outcome: ok, not_modified (304), unchanged (same bytes), failed, gone.",
    ["outcome"],
    registry=REGISTRY,
)
FETCH_SECONDS = Histogram(
    "aggregator_feed_fetch_seconds",
    "Time to fetch (and parse) one feed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40),
    registry=REGISTRY,
)
ARTICLES_EXTRACTED = Counter(
    "aggregator_articles_new",
    "New articles stored, by where their body came from: page (extracted), feed, refused.",
    ["source"],
    registry=REGISTRY,
)
ENTRIES_UPDATED = Counter(
    "aggregator_entries_updated",
    "Stored entries whose title or feed text changed and were updated in place.",
    registry=REGISTRY,
)


@dataclass(frozen=True)
class StorageFacts:
    """What the gauges show, read from storage at scrape time."""

    counts: Mapping[str, int]  # stories, articles
    feeds: Mapping[str, int]  # feeds by health state
    last_refresh: datetime | None = None  # the last fetch of any feed, any outcome


Snapshot = Callable[[], StorageFacts]


class StorageCollector(Collector):
    """Gauges computed at scrape time from ``snapshot()``."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        facts = self._snapshot()
        counts, feeds = facts.counts, facts.feeds
        yield _gauge("aggregator_stories", "Stories published.", counts.get("stories", 0))
        yield _gauge("aggregator_articles_stored", "Articles stored.", counts.get("articles", 0))
        states = GaugeMetricFamily("aggregator_feeds", "Feeds by health state.", labels=["state"])
        for state, number in sorted(feeds.items()):
            states.add_metric([state], number)
        yield states
        # Absent until the first fetch: alert with absent() as well as on its age, e.g.
        # time() - aggregator_last_refresh_timestamp_seconds > 2 * your longest interval.
        if facts.last_refresh is not None:
            yield _gauge(
                "aggregator_last_refresh_timestamp_seconds",
                "Unix time of the last feed fetch (any outcome); stops moving when the"
                " scheduler stalls.",
                facts.last_refresh.timestamp(),
            )


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def render(extra: Collector | None = None) -> bytes:
    """The text exposition of our registry, plus ``extra`` gauges for this scrape."""
    if extra is None:
        return generate_latest(REGISTRY)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(extra)
    return generate_latest(REGISTRY) + generate_latest(scrape)
