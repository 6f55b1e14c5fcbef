"""Load and validate ``feeds.yaml``: the only module that reads the config file.

The file has two top-level keys, ``settings`` (optional mapping) and ``feeds`` (list).
It is parsed with ruamel.yaml, which remembers the line of every key, and validated
with pydantic; any error is raised as :class:`ConfigError` naming file, line and field.

The help text of every key is in config_help.py.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import cssselect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from aggregator import __version__
from aggregator.config_checks import (
    feed_url_problem,
    name_clashes,
    output_path_clashes,
    split_tags,
    tag_clashes,
    url_clashes,
)
from aggregator.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/feeds.yaml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"
DATABASE_ENV_VAR = "AGGREGATOR_DATABASE"
LISTEN_ENV_VAR = "AGGREGATOR_LISTEN"

# About 15,000 feeds; parsing that much YAML already takes a few seconds.
MAX_CONFIG_BYTES = 2 * 1024 * 1024

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """Read ``90s``, ``15m``, ``2h`` or ``1d``.

    A bare number is refused: ``timeout: 30`` used to mean 30 minutes, not the 30
    seconds most admins meant (issue 17). Integer keys that are plain seconds or days
    say so in their name (``cache_max_age``, ``retention_days``) and are not durations.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"write 30s, 15m or 2h (a bare {value} has no unit)")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            raise ValueError(f"write 30s, 15m or 2h (a bare {value.strip()} has no unit)")
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
    refine_every: timedelta = timedelta(minutes=10)

    @field_validator("window", "max_age", "refine_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)


class Settings(_Frozen):
    """Service-wide settings (the ``settings:`` mapping). Every key is optional."""

    database: Path = Path("../data/aggregator.db")
    listen: str = "127.0.0.1:8080"
    public_url: str = ""
    refresh_interval: timedelta = timedelta(minutes=30)
    user_agent: str = ""
    contact_url: str = ""  # the admin's: unset, the CLI warns (issue 17)
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
        """The public URL of the service, without a trailing slash: ``public_url``, else
        the listen address in force (``localhost`` for all interfaces: 0.0.0.0 is no
        address to link to). The server links to the reader's own Host instead."""
        host = {"0.0.0.0": "localhost", "::": "localhost"}.get(self.listen_host, self.listen_host)
        host = f"[{host}]" if ":" in host else host
        return (self.public_url or f"http://{host}:{self.listen_port}").rstrip("/")

    @property
    def effective_user_agent(self) -> str:
        contact = f" (+{self.contact_url})" if self.contact_url else ""
        return self.user_agent or f"aggregator/{__version__}{contact}"

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
        problem = feed_url_problem(value.strip())
        if problem:
            raise ValueError(problem)
        return value.strip()

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        return split_tags(value)

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


def resolve_config_path(path: str | Path | None) -> Path:
    """The --config option, else AGGREGATOR_CONFIG, else config/feeds.yaml."""
    return Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: str | Path) -> Config:
    """Read and validate feeds.yaml. Raises ConfigError naming file, line and field."""
    path = Path(path)
    document = _parse_yaml(read_config_text(path), path)
    if document is None:  # empty, or comments only
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}:1: top level must be a mapping with 'settings' and 'feeds'",
            path=str(path),
            line=1,
        )
    _check_feeds_listed(document, path)
    try:
        config = Config.model_validate({**document, "path": path})
    except ValidationError as exc:
        raise _config_error(exc, document, path) from exc
    _check_clashes(config, document, path)
    return config


def read_config_text(path: Path) -> str:
    """The text of feeds.yaml, refused past MAX_CONFIG_BYTES: a runaway file (50 MB of
    comments) must not keep the reload thread parsing for minutes."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: config is larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB; refused",
                path=str(path),
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}", path=str(path)) from exc


def _check_feeds_listed(document: Any, path: Path) -> None:
    """A file with no ``feeds:`` (truncated, comments only) would silently stop every
    feed; ``feeds: []`` says so on purpose and stays allowed (issue 19)."""
    if document.get("feeds") is not None:
        return
    line = _line_of(document, ("feeds",)) or 1
    problem = "is empty" if "feeds" in document else "missing"
    raise ConfigError(
        f"{path}:{line}: feeds: {problem}: list the feeds to follow"
        " (or write `feeds: []` to follow none)",
        path=str(path),
        line=line,
    )


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


def _check_clashes(config: Config, document: Any, path: Path) -> None:
    """Entries that clash with each other (config_checks.py): the first one found."""
    feeds = config.feeds
    clashes = chain(
        url_clashes([feed.url for feed in feeds]),
        name_clashes([feed.display_name for feed in feeds]),
        tag_clashes([feed.tags for feed in feeds]),
        output_path_clashes([output.path for output in config.outputs]),
    )
    clash = next(clashes, None)
    if clash is None:
        return
    field = "url" if clash.field == "name" and not feeds[clash.index].name else clash.field
    field_path = (clash.section, clash.index, field)  # a feed without a name goes by its URL
    line = _line_of(document, field_path)
    where = _describe_location(document, field_path) if clash.field in ("name", "tags") else None
    raise ConfigError(
        f"{path}:{line or '?'}: {where or f'{clash.section}[{clash.index}].{field}'}:"
        f" {clash.problem}",
        path=str(path),
        line=line,
    )
