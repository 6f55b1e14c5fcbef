"""The error hierarchy. Every failure the pipeline expects is one of these.

    AggregatorError
    ├── ConfigError            feeds.yaml is unreadable or invalid (file, line, field)
    ├── FetchError(url)        a feed or page could not be fetched
    │   ├── HTTPStatusError    the server answered with an error status
    │   ├── ResponseTooLarge   the body (after decompression) passed the size cap
    │   └── BlockedURL         a stranger's URL pointed at a private address or bad scheme
    ├── ParseError(url)        a feed body held no usable entries
    ├── ExtractError(url)      an article page gave no usable text
    │   └── ExtractTimeout     extraction passed the per-page time limit
    ├── StorageError           the database could not be opened or migrated
    │   └── DatabaseUnwritable the disk is full, failing or read-only: no write can succeed
    ├── ListenError            the HTTP server cannot listen on its address (port in use)
    ├── BadRequest             a query string the server refuses (400), like a damaged cursor
    ├── OPMLError              an OPML file to import is unreadable or unsafe
    └── Stopped                the process is stopping: work that had to wait was given up

Errors that concern one URL carry it as ``.url`` so logs and feed health can name it.
Lower-level exceptions are chained with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping


class AggregatorError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(AggregatorError):
    """feeds.yaml could not be loaded. The message names file, line and field."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class FetchError(AggregatorError):
    """A URL could not be fetched."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no usable body.

    ``headers`` (lower-case keys) keep what the answer said about coming back
    (``Retry-After``, ``Date``), so the scheduler can honour it.
    """

    def __init__(
        self, message: str, *, url: str, status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})


class ResponseTooLarge(FetchError):
    """The body grew past the configured cap; reading stopped there."""


class BlockedURL(FetchError):
    """A URL from feed content was refused (private address or non-http(s) scheme)."""


class ParseError(AggregatorError):
    """A feed body could not be parsed into any entry."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ExtractError(AggregatorError):
    """An article page gave no usable text."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ExtractTimeout(ExtractError):
    """Extracting one page took longer than the per-page time limit."""


class StorageError(AggregatorError):
    """The database could not be opened, migrated or written."""


class DatabaseUnwritable(StorageError):
    """No write can succeed now (SQLite's FULL, IOERR or READONLY): a refresh stops
    instead of failing every feed in turn, and tries again later (issue 19)."""


class ListenError(AggregatorError):
    """The HTTP server cannot listen on its address: the port is taken, or not ours."""


class BadRequest(AggregatorError):
    """A request's query string cannot be honoured (the server answers 400)."""


class OPMLError(AggregatorError):
    """An OPML file could not be read, or was refused (too big, DTD, not OPML)."""


class Stopped(AggregatorError):
    """The process is stopping, so work that would have had to wait was given up.

    Not a failure of the feed or page concerned: nothing is recorded against it.
    """
