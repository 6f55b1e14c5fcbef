"""What one extraction may do: the feed's own options (language, keep/drop selectors)
and the service-wide limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractOptions:
    """Per-feed extraction options (feeds.yaml), plus the service-wide limits."""

    language: str | None = None  # the feed's declared language (ISO 639-1)
    keep: tuple[str, ...] = ()  # CSS selectors of the article's own blocks
    drop: tuple[str, ...] = ()  # CSS selectors removed before extraction
    max_bytes: int = 5_000_000  # page HTML beyond this is cut before parsing
    time_limit: float = 0.0  # seconds per page in a worker process; 0 = no limit
    # The page's author and date are looked for only when the feed lacks them: the
    # searches are a third of an extraction's CPU, and the feed's own value wins.
    want_author: bool = True
    want_date: bool = True


DEFAULT_OPTIONS = ExtractOptions()
