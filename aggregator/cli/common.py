"""What every command shares: logging, loading the config, opening the database, and
failing with one plain line (exit 1)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError, StorageError

if TYPE_CHECKING:  # imported lazily at run time: `--help` stays fast
    from aggregator.storage import Storage

log = logging.getLogger("aggregator")


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=LOG_FORMAT, force=True)
    # httpx logs every request at INFO; our own lines already say what happened.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


# The contact the default User-Agent once carried: nobody's, so it counts as unset.
PLACEHOLDER_CONTACT_URL = "https://github.com/aggregator/aggregator"


def config_warnings(config: Config) -> list[str]:
    """What the admin should still set, as `FILE: FIELD: problem` lines: nothing that
    stops the service, shown by `run`, `refresh` and `check-config` until fixed."""
    settings = config.settings
    warnings = []
    if not settings.user_agent and settings.contact_url in ("", PLACEHOLDER_CONTACT_URL):
        warnings.append(
            f"{config.path}: settings.contact_url: not set: publishers see no way to reach you"
            f" in the User-Agent ({settings.effective_user_agent}); set it to your site or a"
            " mailto: address"
        )
    if "lead_threshold" in settings.clustering.model_fields_set:
        warnings.append(
            f"{config.path}: settings.clustering.lead_threshold: no longer used (the"
            " refinement after each refresh weighs all of a story's reports); remove it"
        )
    if not settings.public_url and (settings.output_dir or settings.websub_hub):
        warnings.append(
            f"{config.path}: settings.public_url: not set: the files in output_dir and WebSub"
            f" pings name the feeds at {settings.base_url}, which readers elsewhere cannot"
            " reach; set it to the address readers use"
        )
    return warnings


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def load(ctx: click.Context) -> Config:
    """Load the config named by --config / AGGREGATOR_CONFIG; exit 1 on any error."""
    path: Path = ctx.obj["config_path"]
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(config.settings.log_level)
    return config


@contextmanager
def open_storage(ctx: click.Context) -> Iterator[tuple[Config, Storage]]:
    """Load the config and open its database; exit 1 if either is unusable."""
    from aggregator.storage import Storage

    config = load(ctx)
    try:
        storage = Storage.open(config.database_path)
    except StorageError as exc:
        fail(str(exc))
    try:
        yield config, storage
    finally:
        storage.close()
