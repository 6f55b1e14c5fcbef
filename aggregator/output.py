"""The publish step's edges: read stories from storage, render them, write files.

``publisher`` renders (pure); this module feeds it from the database and writes the
results where they go: a response body, stdout, or files replaced atomically.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Settings
from aggregator.models import FeedMeta
from aggregator.publisher import FEED_PATHS, FORMATS, render_feed
from aggregator.storage import Storage


@dataclass(frozen=True)
class Rendered:
    body: bytes
    updated: datetime
    items: int


def render_from_storage(storage: Storage, settings: Settings, fmt: str, limit: int) -> Rendered:
    """The merged feed in ``fmt`` with the newest ``limit`` stories."""
    stories = storage.published_stories(limit)
    updated = max((story.updated for story in stories), default=datetime(2000, 1, 1, tzinfo=UTC))
    meta = FeedMeta(title=settings.feed_title, public_url=settings.base_url, updated=updated)
    return Rendered(render_feed(stories, meta, fmt), updated, len(stories))


def write_feed_files(storage: Storage, settings: Settings, directory: Path) -> list[Path]:
    """Write feed.xml, feed.atom and feed.json into ``directory``, each atomically."""
    written = []
    for fmt in FORMATS:
        target = directory / FEED_PATHS[fmt].lstrip("/")
        write_atomically(
            target, render_from_storage(storage, settings, fmt, settings.feed_limit).body
        )
        written.append(target)
    return written


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` so readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
