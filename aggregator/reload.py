"""Live reload of feeds.yaml: the daemon applies an admin's edit without a restart.

A watcher thread polls the file's mtime and size every ``POLL_INTERVAL`` and, when
they move, its SHA-256 (an editor touching the file without changing it does
nothing). A changed file is loaded whole with :func:`load_config`; an invalid edit is
rejected whole, the last good config stays in force, and the error (file, line,
field) is kept in :class:`ConfigStatus` for ``/healthz`` until a valid edit replaces
it. A file that cannot be read (removed, mode 000, a directory in its place) is
reported the same way once it stays so for two looks (an editor that deletes before
it writes is not an error), and read again in full when it comes back (issue 19).
Polling rather than inotify: it works the same on bind mounts, NFS and in
containers, and an edit seen two seconds late is fine.

What can change live: the feeds and the settings the pipeline reads on every
refresh. The rest (the database, the listen address, the HTTP clients and worker
pools built once at start, what the server renders with) keeps its running value
and is reported as needing a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.config import MAX_CONFIG_BYTES, Config, load_config
from aggregator.errors import AggregatorError, ConfigError

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0  # seconds
# A valid edit the database could not take (a full disk) is tried again this often,
# without waiting for another save.
APPLY_RETRY_SECONDS = 30.0

# Settings the pipeline reads from the live config on every refresh.
LIVE_SETTINGS = frozenset(
    {
        "refresh_interval",
        "max_feed_bytes",
        "max_page_bytes",
        "min_article_chars",
        "duplicate_threshold",
        "duplicate_window",
        "clustering",
        "output_dir",
        "page_concurrency",
        "page_per_host_limit",
        "feed_concurrency",
        "per_host_limit",
        "max_backoff",
        "jitter",
        "websub_hub",
        "retention_days",
        "extract_time_limit",
    }
)


def restart_needed(running: Config, edited: Config) -> list[str]:
    """The keys whose edited value only a restart applies (``outputs`` included)."""
    keys = [
        name
        for name in type(running.settings).model_fields
        if name not in LIVE_SETTINGS
        and getattr(running.settings, name) != getattr(edited.settings, name)
    ]
    if running.outputs != edited.outputs:
        keys.append("outputs")
    if running.database_path != edited.database_path and "database" not in keys:
        keys.append("database")
    return sorted(keys)


def live_config(running: Config, edited: Config) -> Config:
    """The edited config with every restart-only value kept as it runs now."""
    kept = {name: getattr(running.settings, name) for name in restart_needed(running, edited)}
    kept.pop("outputs", None)
    settings = edited.settings.model_copy(update=kept)
    return edited.model_copy(update={"settings": settings, "outputs": running.outputs})


@dataclass
class ConfigStatus:
    """What /healthz says about feeds.yaml: the config in force and any rejected edit."""

    path: Path
    loaded_at: datetime
    error: str | None = None
    rejected_at: datetime | None = None
    restart_needed: list[str] = field(default_factory=list)
    reloads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def accepted(self, now: datetime, restart: list[str]) -> None:
        with self._lock:
            self.loaded_at, self.error, self.rejected_at = now, None, None
            self.restart_needed = restart
            self.reloads += 1

    def rejected(self, now: datetime, error: str) -> None:
        with self._lock:
            self.error, self.rejected_at = error, now

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "path": str(self.path),
                "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
                "reloads": self.reloads,
                "error": self.error,
                "rejected_at": self.rejected_at.isoformat(timespec="seconds")
                if self.rejected_at
                else None,
                "restart_needed": list(self.restart_needed),
            }


@dataclass(frozen=True)
class FileMark:
    """Enough to tell that a file changed: cheap stat first, then its hash."""

    mtime_ns: int
    size: int
    digest: str


def mark_of(path: Path) -> FileMark:
    """The file's mark; OSError when it cannot be read (removed, mode 000, a directory).
    At most MAX_CONFIG_BYTES are hashed: load_config refuses a bigger file anyway."""
    stat = path.stat()
    with path.open("rb") as file:
        digest = hashlib.sha256(file.read(MAX_CONFIG_BYTES + 1)).hexdigest()
    return FileMark(stat.st_mtime_ns, stat.st_size, digest)


class ConfigWatcher:
    """Polls feeds.yaml in a daemon thread; calls ``apply`` with each valid edit."""

    def __init__(
        self,
        config: Config,
        apply: Callable[[Config], list[str]],
        *,
        poll_interval: float = POLL_INTERVAL,
        retry_after: float = APPLY_RETRY_SECONDS,
    ) -> None:
        self.path = config.path
        self.status = ConfigStatus(path=config.path, loaded_at=datetime.now(UTC))
        self._apply = apply
        self._poll_interval = poll_interval
        self._mark: FileMark | None = None
        with contextlib.suppress(OSError):
            self._mark = mark_of(self.path)
        self._unreadable: str | None = None  # what the last look could not read, and why
        self._reported = False  # ... and whether it has been reported
        self._retry_after = retry_after
        self._retry_at: float | None = None  # when to apply a failed edit again
        self._apply_error: str | None = None  # why it failed (logged when it changes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._poll_interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.check()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("reloading %s failed; keeping the running config", self.path)

    def check(self) -> bool:
        """Reload if the file changed since the last look; True when an edit was seen
        (or the file was reported unreadable)."""
        try:
            mark = mark_of(self.path)
        except OSError as exc:
            return self._cannot_read(exc)
        came_back, self._unreadable = self._reported, None
        self._reported = False
        retry = self._retry_at is not None and time.monotonic() >= self._retry_at
        if mark == self._mark and not (came_back or retry):
            return False
        unchanged = self._mark is not None and mark.digest == self._mark.digest
        self._mark = mark
        if unchanged and not (came_back or retry):
            return False
        self._reload()  # back from unreadable: read in full, whatever it holds now
        return True

    def _cannot_read(self, exc: OSError) -> bool:
        """Report a file that stays unreadable like a rejected edit, once."""
        problem = f"{self.path}: cannot read config: {exc.strerror or exc}"
        if problem != self._unreadable:
            self._unreadable, self._reported = problem, False
            return False  # a second look decides: a save may delete before it writes
        if self._reported:
            return False
        self._reported = True
        log.error("%s (still running the last good config)", problem)
        self.status.rejected(datetime.now(UTC), problem)
        return True

    def _apply_failed(self, now: datetime, exc: AggregatorError) -> None:
        """Report an edit that could not be applied (once per reason) and try it again
        in ``retry_after`` seconds: the file will not change to prompt another look."""
        problem = f"{self.path}: could not apply: {exc}"
        if problem != self._apply_error:
            self._apply_error = problem
            log.error("could not apply the edit of %s: %s (will try again)", self.path, exc)
        self.status.rejected(now, problem)
        self._retry_at = time.monotonic() + self._retry_after

    def _reload(self) -> None:
        now = datetime.now(UTC)
        self._retry_at = None
        try:
            edited = load_config(self.path)
        except ConfigError as exc:
            log.error(
                "rejected edit of %s (still running the last good config): %s", self.path, exc
            )
            self.status.rejected(now, str(exc))
            return
        try:
            restart = self._apply(edited)
        except AggregatorError as exc:  # e.g. the database is briefly unusable, a full disk
            self._apply_failed(now, exc)
            return
        self._apply_error = None
        self.status.accepted(now, restart)
        if restart:
            log.warning(
                "%s reloaded; these settings need a restart to apply: %s",
                self.path,
                ", ".join(restart),
            )
        else:
            log.info(
                "%s reloaded: %d feeds, %d enabled",
                self.path,
                len(edited.feeds),
                len(edited.enabled_feeds),
            )
