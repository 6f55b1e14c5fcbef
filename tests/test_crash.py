"""Crash safety and graceful stop (issue 7), over a real daemon process and sockets.

The daemon refreshes the invented sample outlets (served on 127.0.0.1 by this test)
and is killed with SIGKILL, with its extraction workers, at moments spread over its
start and first refreshes: mid-fetch, mid-extraction, mid-commit. After each kill the
file must pass ``PRAGMA integrity_check`` and keep every article committed before it;
once a last run finishes, every article is stored exactly once and the stories are
those of a clean, uninterrupted refresh of the same site.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from aggregator.config import load_config
from aggregator.demo import DemoSite
from aggregator.pipeline import PipelineContext, refresh_feeds
from aggregator.storage import Storage
from tests.daemon_harness import Daemon, config_text, free_port, stored_groups, wait_for

# When each kill lands: a number is seconds after the process starts (it imports for
# ~1.5 s, then fetches and extracts for ~3 s before its first commit); "commit" is
# the moment another feed's articles appear, while the other feeds are still in
# flight. Each round so gets further, and the kills fall on different stages.
KILLS: tuple[float | str, ...] = (2.5, "commit", 2.0, "commit", 1.0)


def _clean_run(site: DemoSite, tmp_path: Path) -> Path:
    database = tmp_path / "clean.db"
    path = tmp_path / "clean.yaml"
    path.write_text(config_text(site, listen="127.0.0.1:1", database=database))
    config = load_config(path)
    storage = Storage.open(database)
    ctx = PipelineContext.create(config, storage, workers=0)
    try:
        refresh_feeds(ctx, config.enabled_feeds)
    finally:
        ctx.close()
        storage.close()
    return database


def _articles(database: Path) -> list[tuple[str, str]]:
    storage = Storage.open(database)
    try:
        assert storage.integrity_problems() == []
        rows = storage.db.query(
            "SELECT f.url AS feed, a.url FROM articles a JOIN feeds f ON f.id = a.feed_id"
        )
        return sorted((row["feed"], row["url"]) for row in rows)
    finally:
        storage.close()


def _assert_published_files_whole(directory: Path) -> None:
    """Files in output_dir are replaced atomically: old or new, never half written."""
    if (directory / "feed.json").exists():
        json.loads((directory / "feed.json").read_bytes())
    if (directory / "feed.xml").exists():
        assert (directory / "feed.xml").read_bytes().rstrip().endswith(b"</rss>")
    if (directory / "feed.atom").exists():
        assert (directory / "feed.atom").read_bytes().rstrip().endswith(b"</feed>")


def _wait_for_moment(moment: float | str, database: Path, stored: int) -> None:
    if isinstance(moment, float):
        time.sleep(moment)
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _count(database) <= stored:
        time.sleep(0.02)


def _count(database: Path) -> int:
    if not database.exists():
        return 0
    storage = Storage.open(database, migrate=False)  # the daemon may be migrating it
    try:
        return int(storage.db.execute("SELECT count(*) FROM articles").fetchone()[0])
    except sqlite3.OperationalError:  # no tables yet
        return 0
    finally:
        storage.close()


def _all_feeds_refreshed(daemon: Daemon) -> bool:
    health = daemon.health()
    feeds = health["feeds"]
    return (
        bool(health["last_refresh"])
        and feeds["ok"] == feeds["total"]
        and not any(failing for failing in health["failing"])
    )


def test_kill_9_at_any_moment_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    with DemoSite() as site:
        clean = _articles(_clean_run(site, tmp_path))
        listen = f"127.0.0.1:{free_port()}"
        database = tmp_path / "crash.db"
        config = tmp_path / "feeds.yaml"
        config.write_text(
            config_text(site, listen=listen, database=database, settings="output_dir: out")
        )
        survived: list[int] = []  # articles stored after each kill
        before: set[tuple[str, str]] = set()
        for moment in KILLS:
            daemon = Daemon(config, listen)
            _wait_for_moment(moment, database, len(before))
            daemon.kill9()
            stored = _articles(database) if database.exists() else []
            assert len(stored) == len(set(stored)), "an article was stored twice"
            assert before <= set(stored), "a committed article was lost"
            _assert_published_files_whole(tmp_path / "out")
            before = set(stored)
            survived.append(len(stored))
        daemon = Daemon(config, listen)
        daemon.wait_until_serving()
        wait_for(lambda: _all_feeds_refreshed(daemon) and len(_articles(database)) >= len(clean))
        assert daemon.stop() == 0
    final = _articles(database)
    assert final == clean  # every article exactly once, none lost, none extra
    assert stored_groups(database) == stored_groups(tmp_path / "clean.db")
    _assert_published_files_whole(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "feed.json").read_bytes())["items"]
    print(f"survived {len(KILLS)} kills; articles after each: {survived}")


def test_sigterm_stops_within_seconds_and_a_second_signal_at_once(tmp_path: Path) -> None:
    with DemoSite() as site:
        listen = f"127.0.0.1:{free_port()}"
        config = tmp_path / "feeds.yaml"
        config.write_text(config_text(site, listen=listen, database=tmp_path / "db.sqlite"))
        daemon = Daemon(config, listen)
        daemon.wait_until_serving()
        started = time.monotonic()
        assert daemon.stop(timeout=15) == 0
        assert time.monotonic() - started < 10
        # A second signal while the first is being handled: out at once.
        daemon = Daemon(config, listen)
        daemon.wait_until_serving()
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=5) in (0, 1)
    # Restart after an unclean stop needs no manual step: the file opens and is sound.
    storage = Storage.open(tmp_path / "db.sqlite")
    try:
        assert storage.integrity_problems() == []
    finally:
        storage.close()


def test_temporary_files_of_a_killed_writer_are_removed_once_stale(tmp_path: Path) -> None:
    from aggregator.publish.files import STALE_TEMPORARY_SECONDS, remove_stale_temporaries

    feed = tmp_path / "feed.xml"
    feed.write_text("<rss/>")
    killed = tmp_path / ".feed.xml.k1ll3d"  # what write_atomically leaves after kill -9
    in_progress = tmp_path / ".feed.xml.st1lls"
    unrelated = tmp_path / ".feed.json.other"
    for path in (killed, in_progress, unrelated):
        path.write_text("half")
    now = time.time()
    old = now - STALE_TEMPORARY_SECONDS - 60
    for path in (killed, unrelated):
        os.utime(path, (old, old))
    assert remove_stale_temporaries([feed], now=now) == [killed]
    assert not killed.exists() and in_progress.exists() and unrelated.exists()
    assert feed.read_text() == "<rss/>"
