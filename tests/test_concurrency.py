"""Concurrent readers (issue 7): HTTP requests, CLI commands and the scheduler's writes
at the same time, without one "database is locked" error.

A real daemon refreshes a loopback feed that gains an item every few tenths of a
second (so every refresh writes), while threads hammer /feed.xml and friends and the
CLI reads the same file (`feeds`, `feed`) and copies it (`backup`). The hammering goes
on until the scheduler has stored something, so reads and writes always overlap.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from aggregator.demo import DemoSite
from aggregator.storage import Storage
from tests.daemon_harness import Daemon, config_text, free_port, wait_for

HAMMER_SECONDS = 4.0
READERS = 4
PATHS = ("/feed.xml", "/feed.json", "/feed.atom", "/healthz", "/?q=frigate", "/feed.xml?tag=x")


def _growing_feed(count: int) -> bytes:
    items = "".join(
        f"<item><title>Patrol boat number {n} delivered to the coast guard</title>"
        f"<link>{{{{BASE}}}}/growing/item-{n}.html</link><guid>growing-{n}</guid>"
        f"<description>Yard trials of hull {n} finished ahead of schedule; the boat "
        f"joins the squadron at Port Calloway next month.</description></item>"
        for n in range(count)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Growing</title>'
        f"{items}</channel></rss>"
    ).encode()


def _hammer(base_url: str, stop: threading.Event, tally: Counter[str]) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        index = 0
        while not stop.is_set():
            path = PATHS[index % len(PATHS)]
            index += 1
            try:
                status = client.get(path).status_code
                tally["ok" if status == 200 else f"status {status}"] += 1
            except httpx.HTTPError as exc:
                tally[f"error {type(exc).__name__}"] += 1


def _grow(site: DemoSite, stop: threading.Event, grown: list[int]) -> None:
    while not stop.is_set():
        grown[0] += 1
        site.overrides["/growing/feed.xml"] = _growing_feed(grown[0])
        time.sleep(0.3)


def _cli(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _articles(database: Path) -> int:
    storage = Storage.open(database)
    try:
        return int(storage.db.execute("SELECT count(*) FROM articles").fetchone()[0])
    finally:
        storage.close()


def _grown_past(database: Path, count: int) -> int:
    """The number of articles once it is above ``count``; 0 until then."""
    now = _articles(database)
    return now if now > count else 0


def test_readers_cli_and_refreshes_together_never_see_a_locked_database(tmp_path: Path) -> None:
    with DemoSite() as site:
        site.overrides["/growing/feed.xml"] = _growing_feed(1)
        outlets = [
            *site.manifest()["outlets"][:2],
            {"name": "Growing", "feed": "/growing/feed.xml"},
        ]
        listen = f"127.0.0.1:{free_port()}"
        database = tmp_path / "db.sqlite"
        config = tmp_path / "feeds.yaml"
        config.write_text(
            config_text(
                site, listen=listen, database=database, outlets=outlets, feed_extra="interval: 1s"
            )
        )
        daemon = Daemon(config, listen, tick=0.2)
        tally: Counter[str] = Counter()
        stop = threading.Event()
        grown = [1]
        try:
            daemon.wait_until_serving()  # its first refresh is under way: hammer at once
            before = _articles(database)
            threads = [
                threading.Thread(target=_hammer, args=(daemon.base_url, stop, tally))
                for _ in range(READERS)
            ]
            threads.append(threading.Thread(target=_grow, args=(site, stop, grown)))
            for thread in threads:
                thread.start()
            started = time.monotonic()
            running = [  # at once, like cron jobs and an admin's shell
                _cli(config, "feeds"),
                _cli(config, "feed", "--format", "json", "--limit", "500"),
                _cli(config, "backup", str(tmp_path / "backup.db")),
            ]
            commands = [(process.wait(timeout=60), process.communicate()[1]) for process in running]
            time.sleep(max(0.0, HAMMER_SECONDS - (time.monotonic() - started)))
            # Hammer on until the scheduler has written: under the hammering (and a loaded
            # CI machine) the first refresh can take longer than the CLI commands do.
            after = wait_for(lambda: _grown_past(database, before), timeout=60)
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
        finally:
            stop.set()
            assert daemon.stop() == 0
        log = daemon.stderr()
    for returncode, stderr in commands:
        assert returncode == 0, stderr
        assert "locked" not in stderr
    assert "locked" not in log, log[-2000:]
    assert set(tally) == {"ok"}, tally
    assert tally["ok"] > 50
    assert after > before  # the scheduler was writing all along
    backup = Storage.open(tmp_path / "backup.db")
    try:
        assert backup.integrity_problems() == []
    finally:
        backup.close()
    print(
        f"served {tally['ok']} requests without an error during {after - before} new articles;"
        f" {len(commands)} CLI commands ok"
    )
