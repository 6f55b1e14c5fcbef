"""``aggregator run``: the scheduler and the HTTP server in one process.

uvicorn runs in the main thread. The first SIGTERM or SIGINT stops the server, then
the pipeline is told to stop between units of work and the scheduler is shut down,
waiting for the feed in flight (bounded by the fetch timeouts; a feed whose article
pages still wait for their site's slot is dropped unstored and fetched again at the
next start); the process exits 0.
A second signal exits at once: SQLite's journal keeps the database consistent.

A :class:`~aggregator.reload.ConfigWatcher` applies edits of feeds.yaml while it runs
(issue 7): the feeds table is synced on a connection of its own, the pipeline's
config is swapped between units of work, and the refresh job is woken so new feeds
are fetched at once. ``/healthz`` shows a rejected edit and settings needing a restart.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType

import uvicorn
from apscheduler.schedulers.base import BaseScheduler

from aggregator.config import Config
from aggregator.errors import ListenError
from aggregator.pipeline import PipelineContext
from aggregator.reload import POLL_INTERVAL, ConfigWatcher, live_config, restart_needed
from aggregator.scheduler import REFRESH_JOB_ID, TICK, CycleHealth, build_scheduler
from aggregator.serve.http_limits import raise_open_file_limit, uvicorn_config
from aggregator.serve.server import create_app
from aggregator.storage import Storage

log = logging.getLogger(__name__)


def run_daemon(
    config: Config,
    *,
    tick: timedelta = TICK,
    poll_interval: float = POLL_INTERVAL,
    listener: socket.socket | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. Raises ListenError if the address is taken, StorageError
    if the database is unusable: both before anything starts or is logged as serving.
    ``listener``: the server's socket, already bound by the caller (``listen_socket``),
    who can then say the address is taken before printing anything; closed on return."""
    if listener is None:
        listener = listen_socket(config.settings.listen_host, config.settings.listen_port)
    try:
        _run(config, listener, tick=tick, poll_interval=poll_interval)
    finally:
        listener.close()


IN_USE_HINT = "is another aggregator running? change settings.listen or AGGREGATOR_LISTEN"


def listen_socket(host: str, port: int, *, in_use_hint: str = IN_USE_HINT) -> socket.socket:
    """The server's socket, bound now: a port in use fails here, with a plain error
    ending with ``in_use_hint``, instead of after the log has said "serving"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = f" ({in_use_hint})"
        raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}{hint}") from exc
    return sock


def _run(config: Config, listener: socket.socket, *, tick: timedelta, poll_interval: float) -> None:
    # The scheduler's one job thread is this connection's only user (max_instances=1).
    storage = Storage.open(config.database_path, check_same_thread=False)
    storage.sync_feeds(config.feeds, datetime.now(UTC))
    # A restart is often the admin's fix for a feed that never worked: try it now.
    if retried := storage.make_unfetched_feeds_due(datetime.now(UTC)):
        log.info("fetching now %d feeds never fetched successfully", len(retried))
    ctx = PipelineContext.create(config, storage)
    cycles = CycleHealth(tick)
    scheduler = build_scheduler(ctx, tick=tick, health=cycles)
    watcher = ConfigWatcher(
        config, lambda edited: apply_edit(ctx, scheduler, edited), poll_interval=poll_interval
    )
    server = _Server(
        uvicorn_config(
            create_app(config, config_status=watcher.status.report, refresh_status=cycles.report),
            config.settings.listen_host,
            config.settings.listen_port,
        )
    )
    raise_open_file_limit()  # one descriptor per client: slow ones must not starve the rest
    log.info(
        "serving %d feeds; merged feed at %s/feed.xml (database %s)",
        len(config.enabled_feeds),
        config.settings.base_url,
        config.database_path,
    )
    scheduler.start()
    watcher.start()
    try:
        server.run(sockets=[listener])
    finally:
        log.info("stopping: finishing the unit of work in flight")
        ctx.stop.set()
        watcher.stop()
        scheduler.shutdown(wait=True)
        ctx.close()
        storage.close()
        log.info("stopped")


def apply_edit(ctx: PipelineContext, scheduler: BaseScheduler, edited: Config) -> list[str]:
    """Put a valid edit of feeds.yaml in force; return the keys needing a restart.

    The config is swapped before the feeds table is synced, so a refresh starting
    now already sees the new feeds; one in flight re-syncs at its next start.
    """
    running = ctx.config
    restart = restart_needed(running, edited)
    ctx.config = live_config(running, edited)
    now = datetime.now(UTC)
    # Its own connection: ctx.storage belongs to the scheduler's job thread.
    storage = Storage.open(running.database_path)
    try:
        storage.sync_feeds(ctx.config.feeds, now)
        for source in ctx.config.enabled_feeds:
            storage.bring_forward(source.url, now + ctx.config.interval_for(source))
    finally:
        storage.close()
    with contextlib.suppress(Exception):  # the scheduler may be shutting down
        scheduler.modify_job(REFRESH_JOB_ID, next_run_time=now)
    return restart


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
