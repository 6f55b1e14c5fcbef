"""GET feeds and article pages: the error map at the fetch boundary.

Every httpx failure is turned into one of our errors here (errors.py), so nothing
downstream has to know about httpx. Bodies are streamed and capped *after*
decompression, so neither a huge feed nor a gzip bomb can fill memory, and a total
deadline (deadline.py) stops servers that trickle. The clients come from client.py;
URLs strangers wrote go through the private-address guard (guard.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import httpx

from aggregator.errors import FetchError, HTTPStatusError, ResponseTooLarge
from aggregator.fetch.client import MAX_REDIRECTS
from aggregator.fetch.deadline import request_deadline
from aggregator.fetch.dns import LookupTimeout
from aggregator.fetch.guard import LISTED_URL, parse_http_url
from aggregator.fetch.transport import content_codings
from aggregator.models import FetchResult

logger = logging.getLogger(__name__)

# A server may take this many times the per-request timeout in all before we give up.
DEADLINE_FACTOR = 2
# Feed formats first, so a server with content negotiation sends the feed, not a page.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)


# --------------------------------------------------------------------------- fetching


def fetch_feed(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    listed_url: str | None = None,
) -> FetchResult:
    """GET a feed, conditionally when we hold its ETag or Last-Modified.

    A 304 answer gives ``not_modified=True`` and no content. ``listed_url`` is the
    feed's URL in feeds.yaml when ``url`` is another (a recorded move): only the listed
    host is fetched without the private-address guard (guard.FeedRedirectGuard).
    """
    headers = {"Accept": FEED_ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    listed = {LISTED_URL: listed_url or url}
    return _fetch(client, url, headers=headers, max_bytes=max_bytes, extensions=listed)


def fetch_page(client: httpx.Client, url: str, *, max_bytes: int) -> FetchResult:
    """GET an article page (unconditionally)."""
    return _fetch(client, url, headers={}, max_bytes=max_bytes)


_CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since")


def _fetch(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    max_bytes: int,
    extensions: Mapping[str, str] | None = None,
) -> FetchResult:
    timeout = client.timeout.read or 0.0
    total = timeout * DEADLINE_FACTOR
    parsed = parse_http_url(url)
    conditional = any(name in headers for name in _CONDITIONAL_HEADERS)
    with request_deadline(total) as deadline:
        try:
            with client.stream(
                "GET", parsed, headers=headers, extensions=dict(extensions or {})
            ) as response:
                return _read_response(
                    response, url, conditional=conditional, max_bytes=max_bytes, deadline=deadline
                )
        except httpx.TooManyRedirects as exc:
            raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})", url=url) from exc
        except httpx.TimeoutException as exc:
            if isinstance(exc.__cause__, LookupTimeout):
                raise FetchError(str(exc.__cause__), url=url) from exc
            if deadline is not None and time.monotonic() >= deadline:
                message = f"server too slow: no complete answer within {total:g}s (deadline)"
                raise FetchError(message, url=url) from exc
            raise FetchError(f"timed out after {timeout:g}s", url=url) from exc
        except httpx.HTTPError as exc:
            raise FetchError(_describe_error(exc), url=url) from exc


def _read_response(
    response: httpx.Response,
    url: str,
    *,
    conditional: bool,
    max_bytes: int,
    deadline: float | None,
) -> FetchResult:
    status = response.status_code
    logger.debug("%s: HTTP %d from %s", url, status, response.url)
    if status == 304 and conditional:
        return _result(response, url, b"", not_modified=True)
    if not 200 <= status < 300:
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        retry = response.headers.get("retry-after", "").strip()[:40]
        hint = f" (Retry-After: {retry})" if retry and status in (429, 503) else ""
        raise HTTPStatusError(
            f"HTTP {status}{reason}{hint}", url=url, status=status, headers=_lowered(response)
        )
    return _result(response, url, _read_body(response, url, max_bytes, deadline))


def _read_body(response: httpx.Response, url: str, max_bytes: int, deadline: float | None) -> bytes:
    """The decompressed body, refused as soon as it passes ``max_bytes`` or the deadline."""
    _check_declared_length(response, url, max_bytes)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"body larger than {max_bytes} bytes", url=url)
        if deadline is not None and time.monotonic() > deadline:
            raise FetchError("server too slow: body not complete before the deadline", url=url)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_declared_length(response: httpx.Response, url: str, max_bytes: int) -> None:
    """Refuse before reading when an unencoded body announces it is too big."""
    if content_codings(response.headers):
        return
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"body of {declared} bytes is larger than {max_bytes}", url=url)


def _result(
    response: httpx.Response, url: str, content: bytes, *, not_modified: bool = False
) -> FetchResult:
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        content=content,
        headers=_lowered(response),
        not_modified=not_modified,
        permanent_redirect=_permanent_target(response),
    )


def _lowered(response: httpx.Response) -> dict[str, str]:
    return {key.lower(): value for key, value in response.headers.items()}


def _permanent_target(response: httpx.Response) -> str | None:
    """Where the leading run of 301/308 answers points, or None if the first hop was not one.

    A temporary hop ends the run: a feed moved for good to B that redirects for now
    to C should be updated to B, not C.
    """
    hops = [*response.history, response]
    permanent = 0
    while permanent < len(response.history) and hops[permanent].status_code in (301, 308):
        permanent += 1
    return str(hops[permanent].url) if permanent else None


def _describe_error(exc: httpx.HTTPError) -> str:
    """A short, plain-words reason for an httpx failure."""
    text = str(exc)
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text.lower():
            return "connection refused"
        if "name or service not known" in text.lower() or "nodename" in text.lower():
            return "could not resolve host name"
        return f"could not connect: {text}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported URL scheme: {text}"
    if isinstance(exc, httpx.DecodingError):
        return f"could not decode the response body: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnected" in text.lower():  # closed or reset before answering
            return f"connection lost: {text}"
        return f"server broke the HTTP protocol: {text}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {text or 'reset by the server'}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def ping_websub_hub(client: httpx.Client, hub_url: str, topic_urls: Iterable[str]) -> None:
    """Tell a WebSub hub these feeds changed (``hub.mode=publish``, one POST per feed).

    Raises FetchError (HTTPStatusError for an error status) on the first failure.
    """
    for topic in topic_urls:
        try:
            response = client.post(hub_url, data={"hub.mode": "publish", "hub.url": topic})
        except httpx.HTTPError as exc:
            raise FetchError(f"WebSub hub: {_describe_error(exc)}", url=hub_url) from exc
        if response.status_code >= 400:
            raise HTTPStatusError(
                f"WebSub hub answered HTTP {response.status_code}",
                url=hub_url,
                status=response.status_code,
            )
