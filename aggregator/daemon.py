"""``aggregator run``: the scheduler and the HTTP server in one process.

uvicorn runs in the main thread. The first SIGTERM or SIGINT stops the server, then
the pipeline is told to stop between units of work and the scheduler is shut down,
waiting for the feed in flight (bounded by the fetch timeouts); the process exits 0.
A second signal exits at once: SQLite's journal keeps the database consistent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType

import uvicorn

from aggregator.config import Config
from aggregator.pipeline import PipelineContext
from aggregator.scheduler import TICK, build_scheduler
from aggregator.server import create_app
from aggregator.storage import Storage

log = logging.getLogger(__name__)


def run_daemon(config: Config, *, tick: timedelta = TICK) -> None:
    """Run until SIGTERM/SIGINT. Raises StorageError if the database is unusable."""
    # The scheduler's one job thread is this connection's only user (max_instances=1).
    storage = Storage.open(config.database_path, check_same_thread=False)
    storage.sync_feeds(config.feeds, datetime.now(UTC))
    ctx = PipelineContext.create(config, storage)
    scheduler = build_scheduler(ctx, tick=tick)
    server = _Server(
        uvicorn.Config(
            create_app(config),
            host=config.settings.listen_host,
            port=config.settings.listen_port,
            log_level="warning",
            access_log=False,
        )
    )
    log.info(
        "serving %d feeds; merged feed at %s/feed.xml (database %s)",
        len(config.enabled_feeds),
        config.settings.base_url,
        config.database_path,
    )
    scheduler.start()
    try:
        server.run()
    finally:
        log.info("stopping: finishing the unit of work in flight")
        ctx.stop.set()
        scheduler.shutdown(wait=True)
        ctx.close()
        storage.close()
        log.info("stopped")


class _Server(uvicorn.Server):
    """uvicorn's server with our signal policy.

    uvicorn re-raises a captured SIGTERM after shutting down (so the process dies of
    the signal); a daemon that stopped cleanly should exit 0 instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            os._exit(1)
        log.info("%s received: shutting down", signal.Signals(sig).name)
        self.should_exit = True
