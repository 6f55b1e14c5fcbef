"""The ``aggregator`` command: a thin layer that parses arguments and calls functions.

Logs go to stderr, so ``aggregator feed`` can print nothing but the feed to stdout.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import click

from aggregator import __version__
from aggregator.cli.common import config_warnings, fail, load, log, open_storage, setup_logging
from aggregator.cli.stories import stories
from aggregator.config import load_config, resolve_config_path
from aggregator.errors import AggregatorError, ConfigError, ListenError, StorageError
from aggregator.publish.feeds import FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path to feeds.yaml (default: $AGGREGATOR_CONFIG, else config/feeds.yaml).",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Defence-news aggregator: fetch many feeds, extract full text, group copies of
    the same story, and publish one merged feed (RSS, Atom, JSON Feed).

    Start with `aggregator demo` for a look with no network, or `aggregator run`
    for the service on config/feeds.yaml.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = resolve_config_path(config_path)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: refresh feeds on schedule and serve the merged feed over HTTP.

    Stops cleanly on SIGTERM or Ctrl-C.
    """
    from aggregator.daemon import run_daemon

    config = load(ctx)
    for warning in config_warnings(config):
        log.warning(warning)
    try:
        run_daemon(config)
    except (StorageError, ListenError) as exc:
        fail(str(exc))


@cli.command()
@click.option("--workers", type=int, default=None, help="Extraction processes (default: settings).")
@click.pass_context
def refresh(ctx: click.Context, workers: int | None) -> None:
    """Run one full cycle over every enabled feed (fetch, extract, group, publish), then exit.

    Exits 0 even when some feeds failed (they are listed); 1 only when nothing
    could run (bad config or unusable database).
    """
    from aggregator.pipeline import PipelineContext, publish, refresh_feeds, summarize

    with open_storage(ctx) as (config, storage):
        for warning in config_warnings(config):
            log.warning(warning)
        pipeline = PipelineContext.create(config, storage, workers=workers, one_shot=True)
        try:
            outcomes = refresh_feeds(pipeline, config.enabled_feeds)
            publish(pipeline)
        except StorageError as exc:  # a full disk: one line, not a traceback (issue 19)
            fail(str(exc))
        finally:
            pipeline.close()
    click.echo(summarize(outcomes))
    for outcome in outcomes:
        if outcome.status == "failed":
            click.echo(f"  failed: {outcome.name} ({outcome.url}): {outcome.error}")
        if outcome.moved_to:
            click.echo(f"  moved: {outcome.name}: now {outcome.moved_to}; update feeds.yaml")


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate feeds.yaml; print the first error (file:line: field: problem) and exit 1.

    Settings still to set (contact_url) are printed as warnings; they do not fail it."""
    config = load(ctx)
    for warning in config_warnings(config):
        click.echo(f"warning: {warning}", err=True)
    enabled = len(config.enabled_feeds)
    click.echo(f"{config.path}: OK ({len(config.feeds)} feeds, {enabled} enabled)")


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="rss",
    show_default=True,
    help="Feed format.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Stories (default: feed_limit)."
)
@click.option("--tag", "tags", multiple=True, help="Only stories with this tag (repeatable).")
@click.option("--source", "sources", multiple=True, help="Only stories this feed carried.")
@click.option("-q", "--query", default="", help="Only stories matching this full-text search.")
@click.option(
    "--min-sources", type=click.IntRange(min=1), default=1, help="Only stories N+ outlets carried."
)
@click.pass_context
def feed(
    ctx: click.Context,
    fmt: str,
    limit: int | None,
    tags: tuple[str, ...],
    sources: tuple[str, ...],
    query: str,
    min_sources: int,
) -> None:
    """Print the merged feed to stdout (and nothing else). Any --limit works, for export;
    the filters are those of the HTTP slices (?tag=, ?source=, ?q=, ?min_sources=)."""
    from aggregator.models import StoryFilter
    from aggregator.publish.output import render_from_storage
    from aggregator.publish.query import FeedQuery

    with open_storage(ctx) as (config, storage):
        story_filter = StoryFilter(tags, sources, query, min_sources)
        slice_query = FeedQuery(
            limit or config.settings.feed_limit,
            default_limit=config.settings.feed_limit,
            story_filter=story_filter,
        )
        rendered = render_from_storage(
            storage, config.settings, fmt, slice_query.limit, slice_query
        )
    sys.stdout.buffer.write(rendered.body)
    sys.stdout.flush()


@cli.command("import-opml")
@click.argument("opml_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@click.pass_context
def import_opml(ctx: click.Context, opml_file: Path, dry_run: bool) -> None:
    """Add the feeds of OPML_FILE (a reader's export) to feeds.yaml.

    Keeps the file's comments and order; feeds already listed (same URL) are
    skipped. The result is validated before it replaces feeds.yaml.
    """
    from aggregator.errors import OPMLError
    from aggregator.publish.opml import import_opml_file

    config_path: Path = ctx.obj["config_path"]
    try:
        edit = import_opml_file(config_path, opml_file, dry_run=dry_run)
    except (OPMLError, ConfigError) as exc:
        fail(str(exc))
    verb = "would add" if dry_run else "added"
    for added in edit.added:
        click.echo(f"{verb}: {added.name} ({added.url})")
    for skipped in edit.skipped:
        click.echo(f"already present: {skipped.name} ({skipped.url})")
    for dropped in edit.dropped:
        url = f" ({dropped.url})" if dropped.url else ""
        click.echo(f"dropped: {dropped.name}{url}: {dropped.reason}")
    click.echo(
        f"{config_path}: {len(edit.added)} {verb}, {len(edit.skipped)} already present,"
        f" {len(edit.dropped)} dropped"
    )


@cli.command()
@click.option(
    "--reset",
    "reset",
    metavar="[URL_OR_NAME]",
    is_flag=False,
    flag_value="",
    default=None,
    help="Forget a feed's failures, its 410 Gone and its recorded move; fetch it next tick.",
)
@click.option("--all", "reset_all", is_flag=True, help="With --reset: every feed.")
@click.pass_context
def feeds(ctx: click.Context, reset: str | None, reset_all: bool) -> None:
    """Show each feed's health: state, HTTP status, consecutive failures, articles,
    last attempt and success, next fetch, bytes saved by 304s, and what to fix."""
    from datetime import UTC, datetime

    from aggregator.publish.health import format_table

    if reset_all and reset is None:
        fail("--all goes with --reset: `aggregator feeds --reset --all`")
    if reset == "" and not reset_all:
        fail("--reset: name a feed (URL or name) or add --all")
    with open_storage(ctx) as (_, storage):
        if reset is not None:
            urls = storage.reset_feed(None if reset_all else reset, datetime.now(UTC))
            if not urls:
                fail(f"no feed with URL or name {reset!r}")
            click.echo(f"reset: {len(urls)} feeds" if reset_all else "reset: " + ", ".join(urls))
        rows = storage.feed_health()
    click.echo(format_table(rows, datetime.now(UTC)))


@cli.command()
@click.option("--url", "url", required=True, help="The article's URL, as the feed linked it.")
@click.pass_context
def articles(ctx: click.Context, url: str) -> None:
    """Show how each stored article at URL got its text: the extraction status and
    step (precision, selectors, balanced, recall, feed-content, feed-summary), why, and
    language."""
    from aggregator.urls import canonicalize_url

    with open_storage(ctx) as (_, storage):
        rows = storage.articles_at(url, canonicalize_url(url))
    if not rows:
        fail(f"no stored article at {url}")
    for row in rows:
        click.echo(_describe_article(row))


def _describe_article(row: dict[str, object]) -> str:
    fields = [
        ("article", f"{row['id']} in story {row['story_id']}"),
        ("url", row["url"]),
        ("feed", row["feed"]),
        ("title", row["title"]),
        ("status", row["extraction_status"]),
        ("step", row["extraction_step"] or "unknown (stored before steps were recorded)"),
        ("note", row["extraction_note"] or "-"),
        ("language", row["language"] or "unknown"),
        ("published", row["published_at"] or "-"),
        ("fetched", row["fetched_at"]),
        ("text", f"{row['chars']} characters"),
    ]
    return "\n".join(f"{name + ':':<11}{value}" for name, value in fields) + "\n"


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (run also happens on every start)."""
    from aggregator.storage import Storage

    config = load(ctx)
    try:
        storage = Storage.open(config.database_path, migrate=False)
        applied = storage.migrate()
    except (StorageError, AggregatorError) as exc:
        fail(str(exc))
    storage.close()
    click.echo(
        f"{config.database_path}: " + (f"applied {', '.join(applied)}" if applied else "up to date")
    )


@cli.command()
@click.pass_context
def prune(ctx: click.Context) -> None:
    """Delete stories older than retention_days (unless still in the published feed),
    with their articles' full text, and give the freed space back to the disk."""
    from datetime import UTC, datetime

    from aggregator.pipeline.prune import prune as prune_storage

    with open_storage(ctx) as (config, storage):
        report = prune_storage(storage, config.settings, datetime.now(UTC), convert=True)
    click.echo(f"{config.database_path}: {report.summary()}")


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup(ctx: click.Context, target: Path) -> None:
    """Write a consistent copy of the database to TARGET, safe while the daemon runs
    (SQLite's online backup); TARGET appears only once the copy is complete."""
    with open_storage(ctx) as (config, storage):
        try:
            storage.backup_to(target)
        except (StorageError, OSError) as exc:
            fail(f"backup to {target} failed: {exc}")
    click.echo(f"{config.database_path}: backed up to {target}")


@cli.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the merged feed.")
def demo(port: int) -> None:
    """Serve invented sample outlets on loopback and run the daemon against them.

    Needs no network: a first look at merged stories within seconds.
    """
    from aggregator.daemon import listen_socket, run_daemon
    from aggregator.demo import DemoSite, demo_config_text

    setup_logging("INFO")
    try:  # before printing where to look: a port in use is then the only thing said
        listener = listen_socket("127.0.0.1", port, in_use_hint="try `aggregator demo --port N`")
    except ListenError as exc:
        fail(str(exc))
    with (
        contextlib.closing(listener),
        DemoSite() as site,
        tempfile.TemporaryDirectory(prefix="aggregator-demo-") as tmp,
    ):
        config_path = Path(tmp) / "feeds.yaml"
        config_path.write_text(
            demo_config_text(site, listen=f"127.0.0.1:{port}", database=Path(tmp) / "demo.db"),
            encoding="utf-8",
        )
        config = load_config(config_path)
        click.echo(f"Sample outlets at {site.base_url}/ ; merged feed at:")
        for path in ("/feed.xml", "/feed.atom", "/feed.json"):
            click.echo(f"  {config.settings.base_url}{path}")
        click.echo("Press Ctrl-C to stop.")
        run_daemon(config, listener=listener)


cli.add_command(stories)


def _late_config_option() -> click.Option:
    """``--config`` after the command too (``aggregator check-config --config X``): it
    replaces the path the group resolved, since a command's options are parsed after
    the group's."""

    def remember(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["config_path"] = value

    return click.Option(
        ["--config"],
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        expose_value=False,
        callback=remember,
        help="Path to feeds.yaml (as before the command).",
    )


def _accept_config_after(command: click.Command) -> None:
    if command.name != "demo":  # the demo writes its own config
        command.params.append(_late_config_option())
    for sub in getattr(command, "commands", {}).values():
        _accept_config_after(sub)


for _command in cli.commands.values():
    _accept_config_after(_command)


def main() -> None:
    cli(prog_name="aggregator")
