"""Plain, frozen data passed between pipeline stages.

Each stage is a function from one of these to another; none of them does IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FetchResult:
    """What the fetcher got for one URL."""

    url: str  # the URL that was asked for
    final_url: str  # after redirects
    status: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    not_modified: bool = False  # a 304 answer to a conditional GET
    permanent_redirect: str | None = None  # target of a 301/308 seen on the way

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass(frozen=True)
class Entry:
    """One item of a parsed feed."""

    key: str  # stable identity inside its feed: guid, else canonical link
    guid: str | None
    link: str
    canonical_url: str
    title: str
    summary_html: str = ""
    content_html: str = ""  # content:encoded / atom content, when the feed has it
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedFeed:
    """A feed body turned into entries."""

    url: str
    title: str
    site_url: str
    entries: tuple[Entry, ...]
    warning: str | None = None  # feedparser's bozo message when entries were still found


@dataclass(frozen=True)
class Article:
    """The extracted body of one article page."""

    text: str
    html: str
    title: str | None = None
    author: str | None = None
    date: str | None = None  # ISO date found on the page
    image: str | None = None
    sitename: str | None = None
    description: str | None = None
    language: str | None = None  # ISO 639-1: the feed's setting, the page's, or detected
    step: str = "precision"  # the extraction step that produced the text
    doubt: str = ""  # why the text does not look like the article ("" when it does)
    note: str = ""  # why the extraction chain left out a longer text ("" when it did not)


@dataclass(frozen=True)
class StorySource:
    """One article of a story, as the published feed lists it."""

    feed_name: str
    title: str
    url: str
    published: datetime | None
    relation: str  # "lead", "duplicate" (same article republished) or "related"
    score: float | None = None
    extraction_step: str | None = None  # how its text was obtained (extractor.STEP_*)
    language: str | None = None  # ISO 639-1


@dataclass(frozen=True)
class PublishedStory:
    """One item of the merged feed: a story, rendered from its lead article."""

    id: str  # stable forever once published
    title: str
    link: str
    content_html: str  # sanitised, absolute URLs
    content_text: str
    summary: str
    published: datetime
    updated: datetime
    tags: tuple[str, ...]
    sources: tuple[StorySource, ...]  # the lead first
    author: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class FeedMeta:
    """Channel-level facts of the merged feed."""

    title: str
    public_url: str  # base URL the service is reachable at, no trailing slash
    description: str = "Defence news from many outlets, one story per event."
    updated: datetime | None = None
    self_path: str | None = None  # path and query of this feed; default its format's path
    next_path: str | None = None  # the next (older) page, RFC 5005; None on the last page
    hub_url: str | None = None  # WebSub hub advertised with rel="hub"
    title_source_count: bool = False  # "Title (4 sources)" when several outlets carried it


@dataclass(frozen=True)
class StoryFilter:
    """Which stories a slice shows. The default shows every story."""

    tags: tuple[str, ...] = ()  # any of these tags
    sources: tuple[str, ...] = ()  # carried by any of these feeds (by name)
    query: str = ""  # full-text search over the stories' articles
    min_sources: int = 1  # carried by at least this many outlets


@dataclass(frozen=True)
class PageCursor:
    """Where the next (older) page starts: just after this story in feed order."""

    published: datetime
    story_id: str
