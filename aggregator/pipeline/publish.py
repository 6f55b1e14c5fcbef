"""The publish step after a refresh: feed files written (``output_dir``) and the WebSub
hub told (``websub_hub``). The server renders from the database by itself."""

from __future__ import annotations

import logging

from aggregator.errors import FetchError
from aggregator.fetch import ping_websub_hub
from aggregator.pipeline.context import PipelineContext
from aggregator.publish.feeds import FEED_PATHS
from aggregator.publish.output import write_feed_files

log = logging.getLogger(__name__)


def publish(ctx: PipelineContext) -> None:
    """The publish step: the server renders from the database on change; when
    ``output_dir`` is set, the feed files (and named slices) are also written there
    atomically; when ``websub_hub`` is set, the hub is told the feeds changed."""
    directory = ctx.config.output_directory
    if directory is not None:
        written = write_feed_files(ctx.storage, ctx.config.settings, directory, ctx.config.outputs)
        for path in written:
            log.info("wrote %s", path)
    notify_websub_hub(ctx)
    ctx.published = True


def notify_websub_hub(ctx: PipelineContext) -> None:
    """Ping the WebSub hub when what the feeds show changed since the last ping."""
    settings = ctx.config.settings
    if not settings.websub_hub:
        return
    version = ctx.storage.content_version()
    if version == ctx.published_version:
        return
    paths = [*FEED_PATHS.values(), *(output.path for output in ctx.config.outputs)]
    try:
        ping_websub_hub(
            ctx.feed_client, settings.websub_hub, [settings.base_url + p for p in paths]
        )
    except FetchError as exc:
        log.warning("WebSub hub %s not notified (next publish retries): %s", exc.url, exc)
        return
    ctx.published_version = version
    log.info("notified WebSub hub %s of %d feeds", settings.websub_hub, len(paths))
