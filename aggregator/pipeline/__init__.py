"""The pipeline: the orchestrator, the only code that chains the stages.

| module | what it does |
| --- | --- |
| ``context`` | what a refresh needs, built once per process |
| ``refresh`` | refreshing feeds: fetch, parse, pages, store, each feed on its own |
| ``articles`` | a feed's new articles: pages downloaded and extracted, bodies, stories |
| ``discover`` | a site's address pasted as a feed: the feed its page advertises |
| ``entries`` | new and edited entries of a parsed feed |
| ``fetch_state`` | each fetch's outcome recorded on the feed's row |
| ``next_check`` | when to fetch a feed next (pure rules: interval, hints, backoff) |
| ``stories`` | the grouping stage's edge: an article into its story; admin split and merge |
| ``refine`` | the open stories clustered again after a refresh (``refine_every`` apart) |
| ``publish`` | feed files and the WebSub ping after a refresh |
| ``prune`` | retention: aged-out stories deleted whole |

Callers import from here.
"""

from aggregator.pipeline.context import PipelineContext
from aggregator.pipeline.fetch_state import RefreshOutcome
from aggregator.pipeline.publish import publish
from aggregator.pipeline.refine import refine_if_due
from aggregator.pipeline.refresh import refresh_due_feeds, refresh_feeds, summarize

__all__ = [
    "PipelineContext",
    "RefreshOutcome",
    "publish",
    "refine_if_due",
    "refresh_due_feeds",
    "refresh_feeds",
    "summarize",
]
