"""What a refresh needs, built once per process: the config in force, the database,
the HTTP clients, the worker pools, the clock and the stop signal."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aggregator.config import Config, FeedSource
from aggregator.extract.pool import ExtractionPool
from aggregator.fetch import HostSlots, HttpClient, make_client
from aggregator.parse.pool import ParsePool
from aggregator.pipeline.next_check import SchedulePolicy
from aggregator.storage import Storage


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RefinementDue:
    """What waits for the refinement of the open stories, in this process. The
    refinement re-clusters the whole open window however few articles arrived, so the
    daemon runs it at most every ``clustering.refine_every``; articles are placed in
    their stories meanwhile. Kept in memory only: after a restart, the next refresh that
    brings anything refines the whole window again, those left waiting included."""

    # The last article id before the first one waiting (the refinement's window is the
    # one around the newest after it); None: nothing waits.
    after_article_id: int | None = None
    last_run: datetime | None = None  # when this process last refined (ctx.clock)

    def wait_for(self, after_article_id: int) -> None:
        """A refresh stored articles after ``after_article_id``."""
        if self.after_article_id is None:  # the earliest waiting wins
            self.after_article_id = after_article_id


@dataclass
class PipelineContext:
    """Everything a refresh needs, built once per process."""

    config: Config
    storage: Storage
    feed_client: HttpClient
    page_client: HttpClient
    pool: ExtractionPool
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utc_now
    rand: Callable[[], float] = random.random  # jitter; tests pass a constant
    parser: ParsePool = field(default_factory=lambda: ParsePool(0))  # big feeds off-thread
    published_version: str = ""  # content version the WebSub hub last heard about
    published: bool = False  # publish() has run in this process (files written, hub told)
    # Article page downloads in flight per site, over every feed; its limit is set from
    # page_per_host_limit at the start of each refresh.
    page_slots: HostSlots = field(default_factory=lambda: HostSlots(1))
    # A process that refreshes once (``aggregator refresh``) lets its extraction workers
    # go when the pages are extracted: the refinement after them is the refresh's memory
    # peak. The daemon keeps them for its next cycle (starting them costs CPU).
    one_shot: bool = False
    refinement: RefinementDue = field(default_factory=RefinementDue)

    @property
    def policy(self) -> SchedulePolicy:
        settings = self.config.settings
        return SchedulePolicy(max_backoff=settings.max_backoff, jitter=settings.jitter)

    @classmethod
    def create(
        cls,
        config: Config,
        storage: Storage,
        *,
        workers: int | None = None,
        one_shot: bool = False,
    ) -> PipelineContext:
        settings = config.settings
        processes = settings.worker_count if workers is None else workers
        return cls(
            config=config,
            storage=storage,
            feed_client=make_client(settings, guard=False),
            page_client=make_client(settings, guard=True),
            pool=ExtractionPool(processes),
            parser=ParsePool(processes),
            page_slots=HostSlots(settings.page_per_host_limit),
            one_shot=one_shot,
        )

    def interval_for(self, source: FeedSource) -> timedelta:
        """The feed's interval in the config in force now: feeds.yaml may have been
        reloaded while this refresh ran (issue 7), and the edit must win."""
        live = next((feed for feed in self.config.feeds if feed.url == source.url), source)
        return self.config.interval_for(live)

    def close(self) -> None:
        self.feed_client.close()
        self.page_client.close()
        self.pool.close()
        self.parser.close()
