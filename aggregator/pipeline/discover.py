"""A feed URL that answers a web page: use the feed the page advertises (issue 17).

Miniflux and FreshRSS users paste a site's address, not its feed's. When a feed that
has never been read answers an HTML page, the feeds that page advertises (then the
usual paths, parse/discover.py) are fetched in turn through the feed client, with its
limits and its private-address guard; the first that parses is used at once and
recorded like a permanent move (shown by ``aggregator feeds`` and ``/healthz`` under
``moved``, and logged), so the admin can put its URL in feeds.yaml. A feed that was
read before and answers a page one day (an error page) fails as it always did.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from aggregator.config import FeedSource
from aggregator.errors import BlockedURL, FetchError, HTTPStatusError, ParseError, ResponseTooLarge
from aggregator.fetch import fetch_feed
from aggregator.models import FeedState, FetchResult, ParsedFeed
from aggregator.parse.discover import feed_candidates, looks_like_html
from aggregator.pipeline.context import PipelineContext

__all__ = ["discover_feed", "should_discover"]

log = logging.getLogger(__name__)

# A candidate that is simply not there: try the next. Anything else (a timeout, a
# reset) says the site is not answering: stop rather than wait on every candidate.
_NOT_THIS_ONE = (ParseError, HTTPStatusError, BlockedURL, ResponseTooLarge)


def should_discover(state: FeedState, page: FetchResult) -> bool:
    """Look for an advertised feed: the answer is a web page, and this feed has never
    been read (no body remembered) nor moved."""
    return state.content_hash is None and state.permanent_url is None and looks_like_html(page)


def discover_feed(
    ctx: PipelineContext, source: FeedSource, page: FetchResult
) -> tuple[FetchResult, ParsedFeed]:
    """The first advertised (or usual) feed of ``page`` that parses, its result marked
    as a permanent move to it. Raises ParseError saying what to do when none does."""
    candidates = feed_candidates(page)
    for url in candidates:
        try:
            result = fetch_feed(
                ctx.feed_client,
                url,
                etag=None,
                last_modified=None,
                max_bytes=ctx.config.settings.max_feed_bytes,
                listed_url=source.url,
            )
            parsed = ctx.parser.parse(result, now=ctx.clock())
        except _NOT_THIS_ONE as exc:
            log.info("%s: %s is not its feed: %s", source.display_name, url, exc)
            continue
        except FetchError as exc:
            log.info("%s: gave up looking for its feed at %s: %s", source.display_name, url, exc)
            break
        found = result.permanent_redirect or url
        log.warning(
            "%s: %s is a web page; using the feed it advertises, %s: put that URL in feeds.yaml",
            source.display_name,
            source.url,
            found,
        )
        return replace(result, permanent_redirect=found), parsed
    raise ParseError(
        "not a feed: the URL answers a web page, and no feed was found on it"
        f" ({len(candidates)} addresses tried): put the feed's own URL in feeds.yaml",
        url=source.url,
    )
