"""OPML: export the configured feeds, and import a reader's subscriptions.

:func:`render_opml` (for ``/sources.opml``) and :func:`parse_opml` are pure.
:func:`add_feeds_to_yaml` edits the *text* of feeds.yaml with ruamel.yaml's
round-trip mode, so the file keeps its comments, key order and indentation; the CLI
validates the result with ``load_config`` before it replaces the file.

An OPML file comes from anywhere: it is size-capped, refused when it declares a DTD
(no entity expansion of any kind), and only feed URLs that feeds.yaml accepts are
taken; each one dropped is reported with why (issue 17). What is added passes
check-config's rules between entries too (config_checks.py): a feed already listed
under another spelling of its URL is skipped, a name already taken gets the feed's
host added, and a tag takes the spelling feeds.yaml already uses.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from aggregator.config import FeedSource, load_config
from aggregator.config_checks import feed_url_key, feed_url_problem
from aggregator.errors import OPMLError
from aggregator.publish.files import write_atomically

__all__ = [
    "DroppedFeed",
    "OPMLFeed",
    "add_feeds_to_yaml",
    "import_opml_file",
    "parse_opml",
    "read_opml",
    "render_opml",
]

CONTENT_TYPE: Final = "text/x-opml; charset=utf-8"
MAX_OPML_BYTES: Final = 5_000_000
MAX_NAME_CHARS: Final = 200
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="utf-8"?>\n'


@dataclass(frozen=True)
class OPMLFeed:
    """One subscription found in an OPML file."""

    url: str
    name: str
    tags: tuple[str, ...] = ()  # the folders it sits in, outermost first


@dataclass(frozen=True)
class DroppedFeed:
    """A subscription that cannot be a feed of feeds.yaml, and why."""

    url: str
    name: str
    reason: str


# --- export -------------------------------------------------------------------------


def render_opml(feeds: Sequence[FeedSource], title: str) -> bytes:
    """OPML 2.0 listing ``feeds`` (disabled ones too, marked), in the config's order."""
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {
            "type": "rss",
            "text": feed.display_name,
            "title": feed.display_name,
            "xmlUrl": feed.url,
        }
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        if not feed.enabled:
            attrs["isDisabled"] = "true"  # not OPML 2.0; ignored by readers that do not know it
        ET.SubElement(body, "outline", attrs)
    ET.indent(root, space="  ")
    return (_XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


# --- import -------------------------------------------------------------------------


def parse_opml(data: bytes) -> list[OPMLFeed]:
    """Every usable feed in an OPML file, in document order, each feed once."""
    return read_opml(data)[0]


def read_opml(data: bytes) -> tuple[list[OPMLFeed], list[DroppedFeed]]:
    """The usable feeds of an OPML file, in document order, each feed once (``…/feed``
    and ``…/feed/`` are one), and the subscriptions dropped with why.

    Raises OPMLError when the file is too big, declares a DTD, is not well-formed,
    or is not OPML.
    """
    if len(data) > MAX_OPML_BYTES:
        raise OPMLError(f"OPML file is larger than {MAX_OPML_BYTES} bytes")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise OPMLError("OPML file declares a DTD or entities; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OPMLError(f"OPML file is not well-formed XML: {exc}") from exc
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise OPMLError("not an OPML file (no <opml><body>)")
    feeds: dict[str, OPMLFeed] = {}
    dropped: list[DroppedFeed] = []
    for found in _outlines(body, ()):
        if isinstance(found, DroppedFeed):
            dropped.append(found)
        else:
            feeds.setdefault(feed_url_key(found.url), found)
    return list(feeds.values()), dropped


def _outlines(parent: ET.Element, folders: tuple[str, ...]) -> Iterator[OPMLFeed | DroppedFeed]:
    for outline in parent.findall("outline"):
        declared = outline.get("xmlUrl", outline.get("xmlurl"))
        url = (declared or "").strip()
        name = _one_line(outline.get("title") or outline.get("text") or "")
        if declared is None and not len(outline) and _typed_as_feed(outline):
            # a subscription without its feed's URL, not an empty folder: say so
            site = outline.get("htmlUrl", outline.get("htmlurl"))
            reason = f"no xmlUrl (its site: {_one_line(site)})" if site else "no xmlUrl"
            yield DroppedFeed(url="", name=name or "(no title)", reason=reason)
            continue
        if not url and (declared is None or len(outline)):
            # a folder: its name becomes a tag of the feeds inside it
            yield from _outlines(outline, folders + ((name,) if name else ()))
            continue
        problem = feed_url_problem(url) if url else "no feed URL (empty xmlUrl)"
        if problem:
            yield DroppedFeed(url=url, name=name or url, reason=problem)
        else:
            tags = _split_tags(folders + _categories(outline.get("category") or ""))
            yield OPMLFeed(url=url, name=name or url, tags=tags)


def _typed_as_feed(outline: ET.Element) -> bool:
    return (outline.get("type") or "").strip().lower() == "rss"


def _categories(text: str) -> tuple[str, ...]:
    """OPML's ``category``: comma-separated, each maybe a slash path (``/a/b``)."""
    parts = (part.strip().strip("/").rsplit("/", 1)[-1] for part in text.split(","))
    return tuple(_one_line(part) for part in parts if part.strip())


def _split_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """A folder named "Naval, UK" is two tags, as in feeds.yaml; each tag once."""
    pieces = (piece.strip() for tag in tags for piece in tag.split(","))
    return tuple(dict.fromkeys(piece for piece in pieces if piece))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_NAME_CHARS]


# --- feeds.yaml ---------------------------------------------------------------------


@dataclass(frozen=True)
class YAMLEdit:
    """The edited feeds.yaml text and what changed."""

    text: str
    added: tuple[OPMLFeed, ...]  # as written: a taken name has the feed's host added
    skipped: tuple[OPMLFeed, ...]  # already in the file
    dropped: tuple[DroppedFeed, ...] = ()  # not usable as a feed URL, with why


def add_feeds_to_yaml(text: str, feeds: Sequence[OPMLFeed]) -> YAMLEdit:
    """Append ``feeds`` missing from feeds.yaml's ``feeds:`` list, keeping the rest."""
    document, sequence_indent, offset = _load_round_trip(text)
    entries = _feeds_list(document)
    listed = [entry for entry in entries if _is_map(entry)]
    present = {feed_url_key(str(entry.get("url", ""))) for entry in listed}
    names = {str(entry.get("name") or entry.get("url", "")).casefold() for entry in listed}
    spellings = {tag.casefold(): tag for entry in listed for tag in _entry_tags(entry)}
    added: list[OPMLFeed] = []
    skipped: list[OPMLFeed] = []
    for feed in feeds:
        key = feed_url_key(feed.url)
        if key in present:
            skipped.append(feed)
            continue
        present.add(key)
        tags = tuple(dict.fromkeys(spellings.setdefault(t.casefold(), t) for t in feed.tags))
        feed = replace(feed, name=_unique_name(feed, names), tags=tags)
        names.add(feed.name.casefold())
        entries.append(_feed_entry(feed))
        added.append(feed)
    return YAMLEdit(_dump(document, sequence_indent, offset), tuple(added), tuple(skipped))


def _entry_tags(entry: Any) -> list[str]:
    tags = entry.get("tags") or []
    tags = tags.split(",") if isinstance(tags, str) else tags
    return [tag.strip() for tag in tags if isinstance(tag, str) and tag.strip()]


def _unique_name(feed: OPMLFeed, taken: set[str]) -> str:
    """The feed's name, or (when another feed has it: two "News" from two sites) the
    name with the feed's host, numbered if need be: names pick feeds in ?source=."""
    if feed.name.casefold() not in taken:
        return feed.name
    named = f"{feed.name} ({urlsplit(feed.url).hostname or feed.url})"
    candidates = (named if n == 1 else f"{named} {n}" for n in range(1, len(taken) + 2))
    return next(name for name in candidates if name.casefold() not in taken)


def _load_round_trip(text: str) -> tuple[Any, int, int]:
    try:
        document, indent, block_seq_indent = load_yaml_guess_indent(text)
    except YAMLError as exc:
        raise OPMLError(f"feeds.yaml is not valid YAML: {exc}") from exc
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise OPMLError("feeds.yaml: top level must be a mapping")
    offset = block_seq_indent or 0
    # ruamel guesses the indent of a list's items; a mapping's is that less the dash's.
    sequence_indent = indent or 2
    return document, sequence_indent, offset


def _feeds_list(document: CommentedMap) -> CommentedSeq:
    entries = document.get("feeds")
    if entries is None:
        entries = CommentedSeq()
        document["feeds"] = entries
    if not isinstance(entries, CommentedSeq):
        raise OPMLError("feeds.yaml: 'feeds' must be a list")
    return entries


def _is_map(value: object) -> bool:
    return isinstance(value, dict)


def _feed_entry(feed: OPMLFeed) -> CommentedMap:
    entry = CommentedMap()
    entry["name"] = feed.name
    entry["url"] = feed.url
    if feed.tags:
        tags = CommentedSeq(feed.tags)
        tags.fa.set_flow_style()  # [a, b], like the hand-written entries
        entry["tags"] = tags
    return entry


def _dump(document: CommentedMap, sequence_indent: int, offset: int) -> str:
    yaml = YAML(typ="rt")
    yaml.width = 4096  # never fold a long URL
    mapping_indent = sequence_indent - offset if offset else sequence_indent
    yaml.indent(mapping=mapping_indent, sequence=sequence_indent, offset=offset)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def import_opml_file(config_path: Path, opml_path: Path, *, dry_run: bool = False) -> YAMLEdit:
    """Add an OPML file's feeds to feeds.yaml (created if missing) and save it.

    The edited text is written to a temporary file beside feeds.yaml and validated
    with ``load_config`` first; only a valid result replaces the file, atomically.
    Raises OPMLError or ConfigError; feeds.yaml is untouched then.
    """
    try:
        feeds, dropped = read_opml(opml_path.read_bytes()[: MAX_OPML_BYTES + 1])
        text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise OPMLError(f"cannot read {opml_path} or {config_path}: {exc}") from exc
    edit = replace(add_feeds_to_yaml(text, feeds), dropped=tuple(dropped))
    if dry_run or not edit.added:
        return edit
    write_atomically(config_path, edit.text.encode("utf-8"), check=load_config)
    return edit
