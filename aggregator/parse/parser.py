"""Turn a fetched feed body into entries: feedparser for RSS/Atom, json for JSON Feed.

feedparser always gets bytes plus the response headers (never a URL: httpx does the
fetching), so it sees the server's charset and base URL. A ``bozo`` feed that still
yields entries is kept with a warning; one that yields none is a ParseError.

One poisoned item never costs the feed (issue 19): character references to code
points that cannot exist (``&#xD800;``, ``&#x110000;``, on which feedparser raises)
and lone surrogates (a JSON ``"\ud800"``) are replaced with U+FFFD, and an item that
still cannot be read is skipped; both are logged with the feed's URL.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from aggregator.errors import ParseError
from aggregator.models import Entry, FetchResult, ParsedFeed
from aggregator.sanitize import clean_title, escape_text_as_html, repair_text
from aggregator.urls import canonicalize_url, web_url

log = logging.getLogger(__name__)

# A date more than this far ahead of now is a publisher's mistake, not a scheduled story.
FUTURE_TOLERANCE = timedelta(hours=1)
EARLIEST_DATE = datetime(1995, 1, 1, tzinfo=UTC)
# A numeric character reference that may name an impossible code point (feedparser
# raises on a surrogate or one past U+10FFFF): hex from D000 or with five digits or
# more, decimal with five digits or more, leading zeros aside. The everyday ones
# (&#8217;, &#x2014;) do not match, so they cost nothing.
_SUSPECT_REF = re.compile(rb"&#(?:[xX]0*+([dD][0-9a-fA-F]{3}|[0-9a-fA-F]{5,})|0*+([0-9]{5,}));")
_MOST_DIGITS = 8  # more is past U+10FFFF in either base
_REPLACEMENT_REF = b"&#xFFFD;"
# What an item may raise while it is read: a value of an unexpected type or text.
_ITEM_ERRORS = (AttributeError, KeyError, TypeError, ValueError, UnicodeError)


def parse_feed(result: FetchResult, *, now: datetime | None = None) -> ParsedFeed:
    """Parse ``result.content`` into a ParsedFeed. Raises ParseError when nothing usable."""
    now = now or datetime.now(UTC)
    if _looks_like_json(result.content):
        return _parse_json_feed(result, now)
    content = _repair_char_refs(result.content, result.url)
    parsed = feedparser.parse(io.BytesIO(content), response_headers=_headers_for(result))
    base = result.final_url
    entries = _readable_entries(
        parsed.entries, lambda raw: _entry_from_feedparser(raw, now, base), result.url
    )
    warning = str(parsed.get("bozo_exception", "")) if parsed.get("bozo") else None
    if not entries and (warning or not parsed.get("version")):
        raise ParseError(f"not a feed: {warning or 'no RSS/Atom found'}", url=result.url)
    feed_info = parsed.get("feed", {})
    return ParsedFeed(
        url=result.url,
        title=clean_title(feed_info.get("title", "")),
        site_url=feed_info.get("link", ""),
        entries=entries,
        warning=warning,
    )


def _repair_char_refs(content: bytes, url: str) -> bytes:
    """``content`` with every reference to an impossible code point (a surrogate, or
    past U+10FFFF) replaced by one to U+FFFD: feedparser raises on them, whole feed."""
    repaired = 0

    def repair(match: re.Match[bytes]) -> bytes:
        nonlocal repaired
        hex_digits, digits = match.groups()
        text = hex_digits or digits
        code = int(text, 16 if hex_digits else 10) if len(text) <= _MOST_DIGITS else -1
        if code < 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            repaired += 1
            return _REPLACEMENT_REF
        return match.group(0)

    fixed = _SUSPECT_REF.sub(repair, content) if b"&#" in content else content
    if repaired:
        log.warning("%s: replaced %d references to invalid characters", url, repaired)
    return fixed


def _readable_entries(
    items: Iterable[Any], read: Callable[[Any], Entry | None], url: str
) -> tuple[Entry, ...]:
    """Each item read by ``read``; one that cannot be read is logged and skipped."""
    entries = []
    for index, item in enumerate(items):
        try:
            entry = read(item)
        except _ITEM_ERRORS as exc:
            log.warning(
                "%s: skipped item %d, unreadable: %s: %s", url, index + 1, type(exc).__name__, exc
            )
            continue
        if entry is not None:
            entries.append(entry)
    return tuple(entries)


def _headers_for(result: FetchResult) -> dict[str, str]:
    headers = dict(result.headers)
    # feedparser resolves relative links against content-location.
    headers.setdefault("content-location", result.final_url)
    return headers


def _looks_like_json(content: bytes) -> bool:
    return content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _entry_from_feedparser(raw: Mapping[str, Any], now: datetime, base: str) -> Entry | None:
    content = raw.get("content") or []
    return _entry(
        guid=raw.get("id") or None,
        link=raw.get("link", "") or "",
        base=base,
        raw_title=raw.get("title", "") or "",
        summary_html=raw.get("summary", "") or "",
        content_html=content[0].get("value", "") if content else "",
        published=_date(
            _plain_get(raw, "published_parsed") or _plain_get(raw, "updated_parsed"), now
        ),
        updated=_date(_plain_get(raw, "updated_parsed"), now),
        author=raw.get("author") or None,
        tags=tuple(t["term"] for t in raw.get("tags", []) if t.get("term")),
    )


def _entry(*, base: str, **raw: Any) -> Entry | None:
    """An Entry with its identity and canonical URL from ``raw`` (``guid``, ``link``,
    ``raw_title`` and Entry's other fields); None when it has neither a link nor a
    guid (nothing to identify it by).

    Only an http(s) link is kept (issue 19): an item linking ``javascript:``,
    ``data:``, ``file:``... keeps that text as its identity but has no link, so it is
    never fetched nor published with it. Lone surrogates are replaced, and logged."""
    fields = {name: _repaired(value) for name, value in raw.items()}
    if fields != raw:
        log.warning("%s: item %.80r: replaced invalid characters", base, fields["raw_title"])
    guid, link = fields.pop("guid"), fields.pop("link").strip()
    if not link and not guid:
        return None
    title = clean_title(fields.pop("raw_title"))
    safe_link = web_url(link, base) or ""
    if link and not safe_link:
        log.debug("%s: item %r links %.80r, not http(s): kept without a link", base, title, link)
    return Entry(
        key=entry_key(guid, safe_link or link, title),
        guid=guid,
        link=safe_link,
        canonical_url=canonicalize_url(safe_link) if safe_link else "",
        title=title or "(untitled)",
        **fields,
    )


def _repaired(value: Any) -> Any:
    """Strings (alone or in a tuple) with lone surrogates replaced: SQLite and the
    sanitiser refuse them."""
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, tuple):
        return tuple(_repaired(item) for item in value)
    return value


def _plain_get(raw: Mapping[str, Any], key: str) -> Any:
    """dict.get without feedparser's own get(), which maps updated<->published with a
    DeprecationWarning when one of them is missing."""
    return dict.get(raw, key) if isinstance(raw, dict) else raw.get(key)


def entry_key(guid: str | None, link: str, title: str) -> str:
    """Stable identity inside a feed: the guid, else the canonical link, else a hash."""
    if guid:
        return guid.strip()
    if link:
        return canonicalize_url(link)
    return "sha1:" + hashlib.sha1(title.encode("utf-8")).hexdigest()


def _date(value: Any, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return clamp_date(moment, now)


def clamp_date(moment: datetime, now: datetime) -> datetime | None:
    """Dates in the future become now; absurdly old ones are dropped."""
    if moment < EARLIEST_DATE:
        return None
    return min(moment, now) if moment > now + FUTURE_TOLERANCE else moment


def _parse_json_feed(result: FetchResult, now: datetime) -> ParsedFeed:
    try:
        document = json.loads(result.content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"invalid JSON Feed: {exc}", url=result.url) from exc
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise ParseError("JSON document is not a JSON Feed", url=result.url)
    items = document.get("items") or []
    if not isinstance(items, list):
        raise ParseError("JSON Feed items is not a list", url=result.url)
    entries = _readable_entries(
        (item for item in items if isinstance(item, dict)),
        lambda item: _entry_from_json(item, now, result.final_url),
        result.url,
    )
    return ParsedFeed(
        url=result.url,
        title=clean_title(str(document.get("title", ""))),
        site_url=repair_text(str(document.get("home_page_url", ""))),
        entries=entries,
    )


def _entry_from_json(item: Mapping[str, Any], now: datetime, base: str) -> Entry | None:
    authors = item.get("authors") or []
    text = str(item.get("content_text") or "")
    return _entry(
        guid=str(item["id"]) if item.get("id") is not None else None,
        link=str(item.get("url") or item.get("external_url") or ""),
        base=base,
        raw_title=str(item.get("title") or ""),
        summary_html=str(item.get("summary") or ""),
        # content_text is plain text: escaped, never taken as markup.
        content_html=str(item.get("content_html") or escape_text_as_html(text)),
        published=_iso_date(item.get("date_published"), now),
        updated=_iso_date(item.get("date_modified"), now),
        author=str(authors[0].get("name")) if authors and isinstance(authors[0], dict) else None,
        tags=tuple(str(tag) for tag in item.get("tags") or []),
    )


def _iso_date(value: Any, now: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clamp_date(moment.astimezone(UTC), now)
