"""Plain, frozen data passed between pipeline stages.

Each stage is a function from one of these to another; none of them does IO. Types
that one stage makes and another reads live here, so that no stage imports another
for its types (storage never imports the clusterer, nor the clusterer storage):

* fetching and parsing: FetchResult, Entry, ParsedFeed;
* extraction: Article;
* a feed's state as stored: FeedState, BodyFacts;
* articles to store: NewArticle, EntryChange, StoredPage;
* grouping: Candidate (a possible copy), Assignment (where an article goes),
  StoryProfile (what placing an article needs of a story);
* publishing: StorySource, PublishedStory, FeedMeta, StoryFilter, PageCursor.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
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

    @property
    def looks_short(self) -> bool:
        """Whether the doubt only says the text is short for the page: it is real text
        (over the chain's plausible minimum), the article's or part of it, unlike a stub
        or a wall."""
        return self.doubt.startswith(SHORT_FOR_THE_PAGE)


# How an Article.doubt that only finds the text short for its page starts.
SHORT_FOR_THE_PAGE = "too short for the page"


@dataclass(frozen=True)
class TextFeatures:
    """What the grouping reads of an article's body, computed once where the body was
    chosen (an extraction worker): its weighted terms (cluster/events.py
    ``event_terms``) and its MinHash fingerprint (None: too short to compare)."""

    terms: dict[str, float]
    signature: bytes | None
    bands: tuple[str, ...]
    # Each term's share of general-English articles (events.background_share), in the
    # order of ``terms``, so the storing process weighs the terms without looking words up.
    background: array[float] = field(default_factory=lambda: array("d"))
    # ``terms`` as stored (aggregator/packed_terms.py), packed here rather than by the
    # storing process; None: packed when stored.
    packed_terms: bytes | None = None


@dataclass(frozen=True)
class StorySource:
    """One article of a story, as the published feed lists it."""

    feed_name: str
    title: str
    url: str
    published: datetime | None
    relation: str  # "lead", "duplicate" (same article republished) or "related"
    score: float | None = None
    extraction_step: str | None = None  # how its text was obtained (extract: STEP_*)
    language: str | None = None  # ISO 639-1
    feed_url: str | None = None  # the outlet's feed, as in feeds.yaml
    site_url: str | None = None  # the outlet's home page, as its feed gives it


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
    author: str | None = None  # the lead article's byline, as its feed gives it
    image: str | None = None
    # When the story last had news: its newest article's own date (None: ``published``).
    # ``updated`` is when we last changed it (ingest time), for HTTP validators.
    last_activity: datetime | None = None


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


# --------------------------------------------------------------------------- stored feeds


@dataclass(frozen=True)
class FeedState:
    """What the pipeline needs to know about a feed before fetching it."""

    id: int
    url: str
    name: str
    etag: str | None
    last_modified: str | None
    consecutive_failures: int
    permanent_url: str | None = None
    content_hash: str | None = None  # sha256 of the last full body
    body_bytes: int | None = None  # its size: what each 304 saves
    ttl_seconds: int | None = None  # the feed's own <ttl>, remembered across 304s
    disabled_reason: str | None = None  # set on 410 Gone; cleared by reset_feed
    ever_fetched: bool = True  # a fetch has succeeded once: until then, failures retry soon


@dataclass(frozen=True)
class BodyFacts:
    """What is remembered of a full feed body, to skip the next identical one."""

    content_hash: str
    size: int
    ttl_seconds: int | None = None


# --------------------------------------------------------------------------- stored articles


@dataclass(frozen=True)
class NewArticle:
    """An article ready to store: entry, chosen body and fingerprint."""

    feed_id: int
    entry_key: str
    guid: str | None
    url: str
    canonical_url: str
    title: str
    author: str | None
    summary: str
    feed_content: str
    text: str
    html: str
    image: str | None
    published_at: datetime | None
    fetched_at: datetime
    extraction_status: str
    extraction_note: str
    signature: bytes | None
    bands: tuple[str, ...]
    extraction_step: str | None = None  # the chain step that gave the text (extract: STEP_*)
    language: str | None = None  # ISO 639-1
    # The grouping's weighted terms of the title and text (cluster/events.py
    # event_terms), stored with the article; None: computed when it is stored.
    terms: dict[str, float] | None = None
    # The same terms as stored (packed_terms.pack_terms) when a worker packed them.
    packed_terms: bytes | None = None
    # Each term's events.background_share, in the order of ``terms``, when a worker
    # computed them: weighing the article then looks none of them up.
    background: Sequence[float] | None = None


@dataclass(frozen=True)
class EntryChange:
    """An edited entry's new title and feed text (and the body made from it)."""

    title: str
    summary: str
    feed_content: str
    digest: str
    text: str
    html: str
    changed_at: datetime


@dataclass(frozen=True)
class StoredPage:
    """An already extracted page, reused when another feed links the same URL."""

    text: str
    html: str
    image: str | None
    author: str | None
    extraction_status: str
    extraction_step: str | None = None
    language: str | None = None


# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class Candidate:
    """A stored article that might be a copy of a new one."""

    article_id: int
    story_id: str
    canonical_url: str
    guid: str | None
    signature: bytes | None


@dataclass(frozen=True)
class Assignment:
    """Where a new article goes: an existing story, or a new one (story_id None)."""

    story_id: str | None
    method: str  # "url", "guid", "near-duplicate", or "new"
    score: float | None = None
    matched_article_id: int | None = None


@dataclass(frozen=True)
class StoryProfile:
    """What placing an article needs of one candidate story: the story's summed report
    vectors at the article's own terms (the others add nothing to a dot product) and
    how many independent reports that sum holds."""

    shared: Mapping[str, float]
    reports: int
