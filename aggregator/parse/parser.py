"""Turn a fetched feed body into entries: feedparser for RSS/Atom, json for JSON Feed.

feedparser always gets bytes plus the response headers (never a URL: httpx does the
fetching), so it sees the server's charset and base URL. A ``bozo`` feed that still
yields entries is kept with a warning; one that yields none is a ParseError.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from aggregator.errors import ParseError
from aggregator.models import Entry, FetchResult, ParsedFeed
from aggregator.sanitize import clean_title, escape_text_as_html
from aggregator.urls import canonicalize_url, web_url

log = logging.getLogger(__name__)

# A date more than this far ahead of now is a publisher's mistake, not a scheduled story.
FUTURE_TOLERANCE = timedelta(hours=1)
EARLIEST_DATE = datetime(1995, 1, 1, tzinfo=UTC)


def parse_feed(result: FetchResult, *, now: datetime | None = None) -> ParsedFeed:
    """Parse ``result.content`` into a ParsedFeed. Raises ParseError when nothing usable."""
    now = now or datetime.now(UTC)
    if _looks_like_json(result.content):
        return _parse_json_feed(result, now)
    parsed = feedparser.parse(io.BytesIO(result.content), response_headers=_headers_for(result))
    base = result.final_url
    entries = tuple(
        entry
        for raw in parsed.entries
        if (entry := _entry_from_feedparser(raw, now, base)) is not None
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


def _entry(
    *, guid: str | None, link: str, base: str, raw_title: str, **fields: Any
) -> Entry | None:
    """An Entry with its identity and canonical URL; None when it has neither a link
    nor a guid (nothing to identify it by).

    Only an http(s) link is kept (issue 19): an item linking ``javascript:``,
    ``data:``, ``file:``... keeps that text as its identity but has no link, so it is
    never fetched nor published with it."""
    link = link.strip()
    if not link and not guid:
        return None
    title = clean_title(raw_title)
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
    entries = tuple(
        entry
        for item in items
        if isinstance(item, dict)
        and (entry := _entry_from_json(item, now, result.final_url)) is not None
    )
    return ParsedFeed(
        url=result.url,
        title=clean_title(str(document.get("title", ""))),
        site_url=str(document.get("home_page_url", "")),
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
