"""Feed discovery: an admin pasted a site's address where its feed's belongs (issue 17).

Pure: given the HTML page a feed URL answered, list the feed URLs worth trying, the
ones the page advertises (``<link rel="alternate" type="application/rss+xml">`` and
the like, found by trafilatura's own feed finder, ``trafilatura.feeds.determine_feed``,
which only reads the string it is given) first, then the usual places (``/feed``,
``/rss``, ``/atom.xml``…, under the page's folder first when it has one). Fetching
them is the pipeline's job, through fetch/ and its limits and guards: trafilatura's
``find_feed_urls`` would download on its own and is never called.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from aggregator.models import FetchResult
from aggregator.urls import web_url

__all__ = ["MAX_CANDIDATES", "feed_candidates", "looks_like_html"]

log = logging.getLogger(__name__)

# Paths where sites commonly serve their feed (WordPress, Ghost, Hugo, Jekyll...).
COMMON_FEED_PATHS = ("/feed", "/feed/", "/rss", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml")
# The commonest of them, tried first under the folder of a page pasted with a path
# (a blog at /blog/: WordPress, Ghost, Docusaurus, Hugo), as Miniflux does. Four, so the
# site root keeps some of the tries within MAX_CANDIDATES.
FOLDER_FEED_PATHS = ("feed", "rss", "rss.xml", "index.xml")
MAX_ADVERTISED = 4  # a page may advertise many (per category, per comment thread)
MAX_CANDIDATES = 8  # fetched at most, one after another, within the feed's slot
HTML_READ_BYTES = 1_000_000  # the <head> with its links comes first
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def looks_like_html(result: FetchResult) -> bool:
    """True when the answer is a web page rather than a feed: by its Content-Type, or
    by how it starts when the type says nothing useful."""
    content_type = result.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _HTML_TYPES:
        return True
    start = result.content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


def feed_candidates(page: FetchResult) -> list[str]:
    """The feed URLs to try for a feed URL that answered ``page`` (an HTML page), best
    first, http(s) only, without the page itself; at most MAX_CANDIDATES."""
    seen = {page.url, page.final_url}
    candidates: list[str] = []
    for url in [*advertised_feeds(page), *common_feed_urls(page.final_url)]:
        if url not in seen:
            seen.add(url)
            candidates.append(url)
    return candidates[:MAX_CANDIDATES]


def advertised_feeds(page: FetchResult) -> list[str]:
    """The feeds the page links to (``rel="alternate"`` first), resolved against it."""
    try:
        from trafilatura.feeds import FeedParameters, determine_feed

        html = page.content[:HTML_READ_BYTES].decode("utf-8", errors="replace")
        host = urlsplit(page.final_url).hostname or ""
        found = determine_feed(html, FeedParameters(page.final_url, host, page.final_url))
    except Exception:  # a library that changed, a page it chokes on: try the usual paths
        log.warning("%s: could not read the feed links of the page", page.url, exc_info=True)
        return []
    links = (web_url(str(url), page.final_url) for url in found)
    return list(dict.fromkeys(link for link in links if link))[:MAX_ADVERTISED]


def common_feed_urls(page_url: str) -> list[str]:
    """The usual feed paths under the page's folder when it is not the site's root
    (``/blog/`` for ``/blog/`` or ``/blog/post.html``, as a browser resolves ``./``),
    then on the site's root."""
    parts = urlsplit(page_url)
    folder = parts.path[: parts.path.rfind("/") + 1]
    in_folder = [folder + name for name in FOLDER_FEED_PATHS] if folder not in ("", "/") else []
    return [
        urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        for path in (*in_folder, *COMMON_FEED_PATHS)
    ]
