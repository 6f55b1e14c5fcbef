"""``aggregator run``: the scheduler and the HTTP server in one process.

uvicorn owns the main thread and its signal handling: SIGTERM or SIGINT stops the
server, then the pipeline is told to stop between units of work and the scheduler is
shut down, waiting for the feed in flight (bounded by the fetch timeouts).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

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
    server = uvicorn.Server(
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
