"""Load and validate ``feeds.yaml``: the only module that reads the config file.

The file has two top-level keys, ``settings`` (optional mapping) and ``feeds`` (list).
It is parsed with ruamel.yaml, which remembers the line of every key, and validated
with pydantic; any error is raised as :class:`ConfigError` naming file, line and field.

``SETTINGS_HELP`` documents every settings key (README and ``test_docs`` use it).
"""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import cssselect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from aggregator import __version__
from aggregator.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("config/feeds.yaml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"
DATABASE_ENV_VAR = "AGGREGATOR_DATABASE"
LISTEN_ENV_VAR = "AGGREGATOR_LISTEN"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """Read ``90s``, ``15m``, ``2h`` or ``1d`` (a bare number means minutes)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(minutes=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    raise ValueError(f"expected a duration like '30s', '15m', '2h' or '1d', got {value!r}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusteringSettings(_Frozen):
    """``settings.clustering``: how different outlets' reports of one event are grouped.

    Defaults were fitted on the ECB+ and GVC train sets (bench/cluster_fit.py).
    """

    join_threshold: float = Field(default=0.16, gt=0.0, le=1.0)
    merge_threshold: float = Field(default=0.16, gt=0.0, le=1.0)
    lead_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    window: timedelta = timedelta(hours=72)
    max_age: timedelta = timedelta(days=7)
    candidates: int = Field(default=10, ge=1, le=1000)

    @field_validator("window", "max_age", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("lead_threshold")
    @classmethod
    def _unused(cls, value: float) -> float:
        log.warning(
            "settings.clustering.lead_threshold is no longer used (issue 15: the refinement"
            " after each refresh weighs all of a story's reports); it can be removed"
        )
        return value


class Settings(_Frozen):
    """Service-wide settings (the ``settings:`` mapping). Every key is optional."""

    database: Path = Path("../data/aggregator.db")
    listen: str = "127.0.0.1:8080"
    public_url: str = ""
    refresh_interval: timedelta = timedelta(minutes=30)
    user_agent: str = ""
    contact_url: str = "https://github.com/aggregator/aggregator"
    allow_private_addresses: bool = False
    feed_title: str = "Defence news"
    feed_limit: int = Field(default=50, ge=1)
    timeout: timedelta = timedelta(seconds=20)
    max_feed_bytes: int = Field(default=10_000_000, ge=1024)
    max_page_bytes: int = Field(default=5_000_000, ge=1024)
    min_article_chars: int = Field(default=400, ge=0)
    duplicate_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    duplicate_window: timedelta = timedelta(days=14)
    clustering: ClusteringSettings = ClusteringSettings()
    output_dir: Path | None = None
    workers: int = Field(default=0, ge=0)
    page_concurrency: int = Field(default=8, ge=1)
    page_per_host_limit: int = Field(default=2, ge=1, le=16)
    extract_time_limit: timedelta = timedelta(seconds=10)
    log_level: str = "INFO"
    feed_concurrency: int = Field(default=16, ge=1, le=256)
    per_host_limit: int = Field(default=1, ge=1, le=16)
    max_backoff: timedelta = timedelta(hours=24)
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    cache_max_age: int = Field(default=60, ge=0)
    title_source_count: bool = False
    websub_hub: str = ""
    retention_days: int = Field(default=90, ge=1)

    @field_validator(
        "refresh_interval", "timeout", "duplicate_window", "max_backoff", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("extract_time_limit", mode="before")
    @classmethod
    def _extract_time_limit(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("websub_hub")
    @classmethod
    def _websub_hub(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.strip()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port like '127.0.0.1:8080', got {value!r}")
        return value

    @property
    def effective_listen(self) -> str:
        """``listen``, unless AGGREGATOR_LISTEN overrides it (the container uses that)."""
        return os.environ.get(LISTEN_ENV_VAR) or self.listen

    @property
    def listen_host(self) -> str:
        return self.effective_listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.effective_listen.rpartition(":")[2])

    @property
    def base_url(self) -> str:
        """The public URL of the service, without a trailing slash."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")

    @property
    def effective_user_agent(self) -> str:
        return self.user_agent or f"aggregator/{__version__} (+{self.contact_url})"

    @property
    def worker_count(self) -> int:
        """Extraction worker processes; 0 in settings means one per core."""
        return self.workers or (os.cpu_count() or 1)


def _check_css_selector(selector: object) -> None:
    """Refuse a ``keep``/``drop`` entry that is not a valid CSS selector."""
    if not isinstance(selector, str) or not selector.strip() or len(selector) > 200:
        raise ValueError(f"expected a CSS selector (at most 200 characters), got {selector!r}")
    try:
        cssselect.GenericTranslator().css_to_xpath(selector)
    except cssselect.SelectorError as exc:
        raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from exc


class FeedSource(_Frozen):
    """One entry of the ``feeds:`` list."""

    url: str
    name: str = ""
    tags: tuple[str, ...] = ()
    interval: timedelta | None = None
    enabled: bool = True
    priority: int = 0
    # Per-site extraction fixes (issue 5): declarative, validated, no code.
    extract: bool = True  # false: publish the feed's own content, never fetch the page
    keep: tuple[str, ...] = ()  # CSS selectors of the article's own blocks
    drop: tuple[str, ...] = ()  # CSS selectors removed from the page before extraction
    note: str = ""  # why this feed has the settings above, for the next admin
    language: str | None = None  # ISO 639-1 code of the feed's articles

    @field_validator("keep", "drop", mode="before")
    @classmethod
    def _selectors(cls, value: object) -> object:
        selectors = (value,) if isinstance(value, str) else value
        if isinstance(selectors, list | tuple):
            for selector in selectors:
                _check_css_selector(selector)
        return selectors

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-zA-Z]{2}", value.strip()):
            raise ValueError(f"expected a two-letter language code like 'en', got {value!r}")
        return value.strip().lower() if value is not None else None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.strip()

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @property
    def display_name(self) -> str:
        return self.name or self.url


# A slice is served at a path ending in one of these (format chosen by the suffix).
OUTPUT_SUFFIXES = {".xml": "rss", ".rss": "rss", ".atom": "atom", ".json": "json"}
_OUTPUT_PATH = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9._/-]{0,100}$")


class OutputSlice(_Frozen):
    """One entry of the ``outputs:`` list: a named slice of the merged feed."""

    path: str
    title: str = ""
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    q: str = ""
    min_sources: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        suffix = Path(value).suffix
        if not _OUTPUT_PATH.match(value) or ".." in value or suffix not in OUTPUT_SUFFIXES:
            raise ValueError(
                f"expected a path like '/naval.xml' ending in .xml, .rss, .atom or .json,"
                f" got {value!r}"
            )
        return value

    @field_validator("tags", "sources", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @property
    def format(self) -> str:
        return OUTPUT_SUFFIXES[Path(self.path).suffix]


class Config(_Frozen):
    """The whole of feeds.yaml, plus where it was read from."""

    settings: Settings = Settings()
    feeds: tuple[FeedSource, ...] = ()
    outputs: tuple[OutputSlice, ...] = ()
    path: Path = Path("feeds.yaml")

    @property
    def database_path(self) -> Path:
        """The database file; relative paths are relative to the config file."""
        override = os.environ.get(DATABASE_ENV_VAR)
        if override:
            return Path(override)
        return (self.path.parent / self.settings.database).resolve()

    @property
    def output_directory(self) -> Path | None:
        """Where refreshes also write feed files (relative to the config file), if set."""
        if self.settings.output_dir is None:
            return None
        return (self.path.parent / self.settings.output_dir).resolve()

    def interval_for(self, feed: FeedSource) -> timedelta:
        return feed.interval or self.settings.refresh_interval

    @property
    def enabled_feeds(self) -> tuple[FeedSource, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)


SETTINGS_HELP: dict[str, str] = {
    "database": "SQLite file, relative to feeds.yaml (env AGGREGATOR_DATABASE overrides it).",
    "listen": "host:port the HTTP server binds to (env AGGREGATOR_LISTEN overrides it).",
    "public_url": "URL readers reach the service at (used for self links); default http://LISTEN.",
    "refresh_interval": "How often each feed is fetched unless the feed sets `interval`.",
    "user_agent": "User-Agent header; default names aggregator, its version and contact_url.",
    "contact_url": "Contact URL put in the default User-Agent so publishers can reach you.",
    "allow_private_addresses": (
        "Allow URLs from feed content (article links, redirects) to reach loopback, "
        "private or link-local addresses. Keep false on the internet."
    ),
    "feed_title": "Title of the merged feed.",
    "feed_limit": "How many stories the published feeds carry by default.",
    "timeout": "Per-request timeout (connect, read and total deadline).",
    "max_feed_bytes": "Largest feed body read, after decompression; bigger bodies are refused.",
    "max_page_bytes": "Largest article page read, after decompression.",
    "min_article_chars": "Extracted text shorter than this falls back to the feed's own text.",
    "duplicate_threshold": "Estimated Jaccard similarity of bodies above which two articles "
    "are copies of one article (MinHash over word 3-shingles).",
    "duplicate_window": "How far back copies are looked for.",
    "clustering": "Grouping of different outlets' reports of one event (a mapping; "
    "see CLUSTERING_HELP).",
    "output_dir": "If set, each refresh also writes feed.xml, feed.atom and feed.json "
    "there (atomically), relative to feeds.yaml; for static hosting.",
    "workers": "Extraction worker processes; 0 means one per CPU core.",
    "page_concurrency": "Article pages fetched at once for one feed.",
    "page_per_host_limit": "Article pages fetched at once from one site (scheme, host and "
    "port), over all the feeds being refreshed; the site's other pages wait their turn.",
    "extract_time_limit": "Longest extraction of one page (in a worker process); past it the "
    "page is skipped and the feed's own text is used.",
    "log_level": "DEBUG, INFO, WARNING or ERROR.",
    "feed_concurrency": "Feeds fetched at once, over all sites.",
    "per_host_limit": "Feeds fetched at once from one site (scheme, host and port), so "
    "many feeds on one site do not hammer it.",
    "max_backoff": "Longest wait between fetches of a failing feed (doubling per failure), "
    "and the most a publisher's Retry-After, Cache-Control or ttl can delay a feed.",
    "jitter": "Fraction of each wait added at random (0 to 1), so feeds do not fire together; "
    "never fetches sooner than asked.",
    "cache_max_age": "Seconds readers and proxies may cache the feeds and the page "
    "(Cache-Control max-age).",
    "title_source_count": "Append the number of outlets to a story's title when more than "
    "one carried it, like '... (4 sources)'.",
    "websub_hub": "WebSub hub URL: advertised in every feed (rel=hub) and pinged after "
    "each refresh that changed the feed. Unset: no WebSub.",
    "retention_days": "Articles older than this many days are pruned (with their text), "
    "unless their story is still in the published feed; `aggregator prune` does it now.",
}

CLUSTERING_HELP: dict[str, str] = {
    "join_threshold": "Average similarity (cosine of weighted terms) to an open story's "
    "reports at which a new article joins that story as related coverage when it arrives.",
    "merge_threshold": "Average similarity between two groups of reports at which the "
    "refinement after each refresh keeps them in one story (it merges, splits and moves "
    "on this; a single article never merges stories).",
    "lead_threshold": "No longer used (the refinement weighs all of a story's reports "
    "instead); accepted so that existing configurations still load.",
    "window": "A story stays open to new members this long after its last member.",
    "max_age": "A story takes related coverage for at most this long after its first "
    "report, however steadily it grows; later reports start a new story (copies of its "
    "articles still join it). Keeps a recurring subject from becoming one endless story.",
    "candidates": "Open stories compared with each new article (found by the index).",
}

FEED_KEYS_HELP: dict[str, str] = {
    "url": "Feed URL (RSS, Atom or JSON Feed). Required; fetched as given.",
    "name": "Outlet name shown in the merged feed; default the URL.",
    "tags": "List of tags copied onto every story from this feed.",
    "interval": "Refresh interval for this feed (like 15m, 2h); default refresh_interval.",
    "enabled": "false stops polling the feed; its stories stay.",
    "extract": "false: publish the feed's own content and never fetch article pages.",
    "keep": "CSS selectors of the blocks that hold the article; only they are extracted.",
    "drop": "CSS selectors of blocks removed from article pages before extraction.",
    "note": "Free text: why this feed needs its extraction settings.",
    "language": "Two-letter language of the feed's articles (like en); also a target "
    "for extraction: a page detected in another language gives way to the feed's text.",
    "priority": "Lead choice: a story's title, link and text come from the member whose "
    "feed has the highest priority (e.g. 10 for an official release or a wire, "
    "-5 for an aggregator blog); default 0.",
}


OUTPUT_KEYS_HELP: dict[str, str] = {
    "path": "Where the slice is served, like /naval.xml; the suffix (.xml or .rss, .atom,"
    " .json) picks the format. Required.",
    "title": "Title of the slice's feed; default feed_title.",
    "tags": "Only stories carrying one of these tags.",
    "sources": "Only stories carried by one of these feeds (by name).",
    "q": "Only stories whose articles match this full-text search.",
    "min_sources": "Only stories carried by at least this many outlets. Default 1.",
    "limit": "Stories in the slice; default feed_limit.",
}


def resolve_config_path(path: str | Path | None) -> Path:
    """The --config option, else AGGREGATOR_CONFIG, else config/feeds.yaml."""
    return Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: str | Path) -> Config:
    """Read and validate feeds.yaml. Raises ConfigError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}", path=str(path)) from exc
    document = _parse_yaml(text, path)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}:1: top level must be a mapping with 'settings' and 'feeds'",
            path=str(path),
            line=1,
        )
    try:
        config = Config.model_validate({**document, "path": path})
    except ValidationError as exc:
        raise _config_error(exc, document, path) from exc
    _check_duplicate_urls(config, document, path)
    _check_output_paths(config, document, path)
    return config


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{path}:{line}: invalid YAML: {problem}", path=str(path), line=line
        ) from exc
    except Exception as exc:  # ruamel raises a few unmarked errors too
        raise ConfigError(f"{path}: invalid YAML: {exc}", path=str(path)) from exc


def _config_error(exc: ValidationError, document: Any, path: Path) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(part for part in first["loc"] if part != "path")
    line = _line_of(document, loc)
    field_name = _describe_location(document, loc)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return ConfigError(
        f"{path}:{line or '?'}: {field_name}: {message}{suffix}", path=str(path), line=line
    )


def _describe_location(document: Any, loc: tuple[Any, ...]) -> str:
    """Name the field like ``feeds[3] (Naval News).interval``."""
    parts: list[str] = []
    node = document
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                name = node[part].get("name") or node[part].get("url")
                label += f" ({name})" if name else ""
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
        node = _child(node, part)
    return "".join(parts) or "top level"


def _line_of(document: Any, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest node of ``loc`` that exists in the YAML tree."""
    line: int | None = None
    node = document
    for part in loc:
        position = _position_of(node, part)
        if position is None:
            break
        line = position + 1
        node = _child(node, part)
    return line


def _position_of(node: Any, part: Any) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if isinstance(node, dict) and part in node:
            return int(lc.key(part)[0])
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            return int(lc.item(part)[0])
    except (KeyError, IndexError, TypeError):
        return None
    return None


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _check_duplicate_urls(config: Config, document: Any, path: Path) -> None:
    seen: dict[str, int] = {}
    for index, feed in enumerate(config.feeds):
        if feed.url in seen:
            line = _line_of(document, ("feeds", index, "url"))
            raise ConfigError(
                f"{path}:{line or '?'}: feeds[{index}].url: duplicate of feeds[{seen[feed.url]}]"
                f" ({feed.url})",
                path=str(path),
                line=line,
            )
        seen[feed.url] = index


# Built-in paths a slice must not shadow.
RESERVED_OUTPUT_PATHS = frozenset({"/feed.xml", "/feed.atom", "/feed.json"})


def _check_output_paths(config: Config, document: Any, path: Path) -> None:
    seen: set[str] = set()
    for index, output in enumerate(config.outputs):
        if output.path in seen or output.path in RESERVED_OUTPUT_PATHS:
            line = _line_of(document, ("outputs", index, "path"))
            problem = "duplicate path" if output.path in seen else "path is built in"
            raise ConfigError(
                f"{path}:{line or '?'}: outputs[{index}].path: {problem} ({output.path})",
                path=str(path),
                line=line,
            )
        seen.add(output.path)
