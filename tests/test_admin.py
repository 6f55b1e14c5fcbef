"""An admin's rough edges with the real daemon and CLI (issues 17 and 19): a feed that
never worked is retried soon, also across a restart; `feeds --reset --all`.

Real processes on 127.0.0.1, as in test_reload.py and test_crash.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.config import FeedSource, Settings
from aggregator.errors import DatabaseUnwritable, StorageError
from aggregator.scheduler import CycleHealth
from aggregator.storage import Storage
from tests.daemon_harness import Daemon, free_port, wait_for


def rss(base_url: str, *items: tuple[str, str], more: str = "") -> bytes:
    """An invented feed whose items (guid, title) link back to the loopback server."""
    entries = "".join(
        f"<item><title>{title}</title><link>{base_url}/{guid}</link><guid>{guid}</guid>"
        f"<description>{title}: the harbour board says the work starts in spring.{more}"
        "</description></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Quay Notes</title>'
        f"<link>{base_url}/</link>{entries}</channel></rss>"
    ).encode()


class FlakyFeeds:
    """Feeds on loopback: /broken.xml answers 500 until ``fixed`` is set, /fresh.xml has
    a new item at every fetch; hits counted."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.fixed = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits = owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                ok = self.path != "/broken.xml" or owner.fixed.is_set()
                body = rss(owner.base_url, ("tugs", "Tug fleet renewal begins"))
                if self.path == "/fresh.xml":  # a long new item: it needs new pages to store
                    words = " ".join(f"hull{hits}x{word}" for word in range(3000))
                    body = rss(owner.base_url, (f"boat-{hits}", f"Boat {hits} named"), more=words)
                body = body if ok else b"oops"
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feeds() -> Iterator[FlakyFeeds]:
    server = FlakyFeeds()
    try:
        yield server
    finally:
        server.close()


def write_config(
    path: Path, feeds: FlakyFeeds, listen: str, *, extra: str = "", more_feeds: str = ""
) -> Path:
    path.write_text(
        "settings:\n"
        f"  listen: {json.dumps(listen)}\n"
        f"  database: {json.dumps(str(path.parent / 'news.db'))}\n"
        "  allow_private_addresses: true\n"
        "  workers: 1\n"
        "  log_level: INFO\n"
        "  refresh_interval: 30m\n"
        "  contact_url: mailto:admin@quay.example\n"
        f"{extra}"
        "feeds:\n"
        "  - name: Broken\n"
        f"    url: {feeds.base_url}/broken.xml\n"
        "    extract: false\n"  # the feed's own text: no page fetched, anywhere
        "  - name: Good\n"
        f"    url: {feeds.base_url}/good.xml\n"
        "    extract: false\n"
        f"{more_feeds}"
    )
    return path


def test_a_feed_never_fetched_is_retried_soon_and_at_once_after_a_restart(
    tmp_path: Path, feeds: FlakyFeeds
) -> None:
    """Issue 17: a failed first fetch waited an hour (twice the interval), even across a
    restart. Now the first retry is a minute away, and a restart tries it at once."""
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "feeds.yaml", feeds, listen)
    daemon = Daemon(config, listen, tick=0.3)
    try:
        daemon.wait_until_serving()
        failing = wait_for(lambda: daemon.health()["failing"])
        (broken,) = failing
        assert broken["name"] == "Broken"
        wait = datetime.fromisoformat(broken["next_check"]) - datetime.now(UTC)
        assert wait <= timedelta(minutes=2), wait  # 1 min plus jitter, not an hour
        assert daemon.stop() == 0
        hits = feeds.hits["/broken.xml"]

        feeds.fixed.set()  # the admin fixed it, and restarts
        daemon = Daemon(config, listen, tick=0.3)
        daemon.wait_until_serving()
        wait_for(lambda: feeds.hits["/broken.xml"] > hits, timeout=20)
        wait_for(lambda: daemon.health()["feeds"]["failing"] == 0, timeout=20)
        assert "fetching now 1 feeds never fetched successfully" in daemon.stderr()
    finally:
        daemon.stop()


def test_feeds_reset_all(tmp_path: Path, feeds: FlakyFeeds) -> None:
    """Issue 17: `feeds --reset` took one feed at a time."""
    config = write_config(tmp_path / "feeds.yaml", feeds, "127.0.0.1:1")
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "refresh", "--workers", "0"]).exit_code == 0
    table = runner.invoke(cli, ["--config", str(config), "feeds"]).output
    assert "failing" in table

    reset = runner.invoke(cli, ["--config", str(config), "feeds", "--reset", "--all"])
    assert reset.exit_code == 0, reset.output
    assert reset.output.startswith("reset: 2 feeds\n")
    assert "failing" not in reset.output

    alone = runner.invoke(cli, ["--config", str(config), "feeds", "--reset"])
    assert alone.exit_code == 1 and "name a feed (URL or name) or add --all" in alone.output
    stray = runner.invoke(cli, ["--config", str(config), "feeds", "--all"])
    assert stray.exit_code == 1 and "--all goes with --reset" in stray.output
    one = runner.invoke(cli, ["--config", str(config), "feeds", "--reset", "broken"])
    assert one.exit_code == 0 and f"reset: {feeds.base_url}/broken.xml" in one.output


# --------------------------------------------------------------------------- the CLI


def test_config_is_accepted_after_the_command_too(tmp_path: Path) -> None:
    """Issue 17: `aggregator check-config --config X` failed (only before it worked)."""
    config = tmp_path / "mine.yaml"
    config.write_text("settings:\n  contact_url: mailto:admin@quay.example\nfeeds: []\n")
    runner = CliRunner()
    after = runner.invoke(cli, ["check-config", "--config", str(config)])
    assert after.exit_code == 0, after.output
    assert after.output == f"{config}: OK (0 feeds, 0 enabled)\n"
    other = tmp_path / "other.yaml"
    other.write_text("feeds: [}\n")
    # Given twice, the one after the command wins.
    both = runner.invoke(cli, ["--config", str(other), "check-config", "--config", str(config)])
    assert both.exit_code == 0, both.output
    nested = runner.invoke(cli, ["stories", "split", "--config", str(config), "http://x.example/"])
    assert nested.exit_code == 1 and "no stored article" in nested.output.lower()
    assert "--config" in runner.invoke(cli, ["feeds", "--help"]).output


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ("", True),
        ("  contact_url: https://github.com/aggregator/aggregator\n", True),  # the old default
        ("  contact_url: mailto:admin@quay.example\n", False),
        ("  user_agent: QuayBot/2 (+https://quay.example/bot)\n", False),
    ],
)
def test_an_unset_contact_url_is_a_warning_not_an_error(
    tmp_path: Path, settings: str, warned: bool
) -> None:
    """Issue 17: the default User-Agent's contact was a placeholder nobody reads."""
    config = tmp_path / "feeds.yaml"
    config.write_text(f"settings:\n{settings}  log_level: WARNING\nfeeds: []\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    assert result.exit_code == 0
    warning = f"warning: {config}: settings.contact_url: not set: publishers see no way"
    assert (warning in result.stderr) is warned
    assert "OK (0 feeds" in result.stdout


def test_a_port_in_use_fails_before_serving_with_a_plain_error(
    tmp_path: Path, feeds: FlakyFeeds
) -> None:
    """Issue 17: a port already in use logged "serving…" (and started fetching) before
    failing with uvicorn's bare errno."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "feeds.yaml", feeds, f"127.0.0.1:{port}")
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "--config", str(config), "run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (is another aggregator running? change settings.listen or AGGREGATOR_LISTEN)\n"
    )
    assert "serving" not in done.stderr and "Traceback" not in done.stderr
    assert feeds.hits == {}  # nothing was fetched either


def test_demo_on_a_port_in_use_says_only_so(tmp_path: Path) -> None:
    """`aggregator demo` printed its feed URLs and "Press Ctrl-C to stop." before it
    found the port taken: now the one error line, and exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (try `aggregator demo --port N`)\n"
    )


def test_a_removed_or_replaced_feeds_yaml_degrades_health_and_keeps_serving(
    tmp_path: Path, feeds: FlakyFeeds
) -> None:
    """Issue 19: deleting feeds.yaml, or a directory in its place, was silent."""
    feeds.fixed.set()
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "feeds.yaml", feeds, listen)
    text = config.read_text()
    daemon = Daemon(config, listen, tick=0.3, poll=0.2)
    try:
        daemon.wait_until_serving()
        wait_for(lambda: daemon.health()["status"] == "ok" and daemon.health()["stories"])

        def config_error() -> str:
            return str(daemon.health()["config"]["error"] or "")

        config.unlink()
        wait_for(lambda: "cannot read config: No such file or directory" in config_error())
        assert daemon.health()["status"] == "degraded"
        assert httpx.get(daemon.base_url + "/feed.xml", timeout=5).status_code == 200
        config.mkdir()
        wait_for(lambda: "cannot read config: Is a directory" in config_error())
        config.rmdir()
        config.write_text(text)
        wait_for(lambda: daemon.health()["config"]["error"] is None)
        assert daemon.health()["status"] == "ok"
        assert daemon.health()["feeds"]["total"] == 2  # the last good config all along
        log = daemon.stderr()
        assert f"{config}: cannot read config: No such file or directory (still running" in log
    finally:
        daemon.stop()


# --------------------------------------------------------------------------- a full disk

# The real CLI or daemon in a child process whose database may not grow by one page
# while FLAG exists: SQLite itself then answers SQLITE_FULL ("database or disk is
# full"), as it does on a full disk (no loop device or tmpfs is needed for that).
FULL_DISK_LAUNCH = """
import contextlib, sys
from datetime import timedelta
from pathlib import Path
from aggregator.storage.sql import SqlDoor

FLAG = Path(sys.argv[1])
_transaction = SqlDoor.transaction

@contextlib.contextmanager
def transaction(self):
    if not self.db.conn.in_transaction:
        pages = self.db.conn.execute("PRAGMA page_count").fetchone()[0]
        self.db.conn.execute(f"PRAGMA max_page_count = {pages if FLAG.exists() else 2**30}")
    with _transaction(self):
        yield

SqlDoor.transaction = transaction
if sys.argv[2] == "daemon":
    from aggregator.cli.common import setup_logging
    from aggregator.config import load_config
    from aggregator.daemon import run_daemon
    config = load_config(sys.argv[3])
    setup_logging(config.settings.log_level)
    run_daemon(config, tick=timedelta(seconds=0.3), poll_interval=0.3)
else:
    from aggregator.cli import main
    sys.argv = ["aggregator", *sys.argv[3:]]
    main()
"""

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
FRESH_FEED = "  - name: Fresh\n    url: {base}/fresh.xml\n    interval: 1s\n    extract: false\n"


class FullDiskDaemon(Daemon):
    """``aggregator run`` whose database is full while ``flag`` exists."""

    def __init__(self, config: Path, listen: str, flag: Path) -> None:
        self.config = config
        self.base_url = f"http://{listen}"
        self.log = config.with_name("daemon.log")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", FULL_DISK_LAUNCH, str(flag), "daemon", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )


def test_refresh_on_a_full_disk_says_so_in_one_line(tmp_path: Path, feeds: FlakyFeeds) -> None:
    """Issue 19: `refresh` on a full disk ended in a 60-line traceback, raised again
    from recording the feed's failure."""
    more = FRESH_FEED.format(base=feeds.base_url)
    config = write_config(tmp_path / "feeds.yaml", feeds, "127.0.0.1:1", more_feeds=more)
    flag = tmp_path / "FULL"
    flag.touch()
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_LAUNCH, str(flag), "cli", "--config", str(config)]
        + ["refresh", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.endswith(f"error: database or disk is full: {tmp_path / 'news.db'}\n")
    assert "Traceback" not in done.stderr, done.stderr


def test_a_full_disk_degrades_health_while_serving_goes_on_and_recovers(
    tmp_path: Path, feeds: FlakyFeeds
) -> None:
    """Issue 19: under `run`, /healthz said ok with 0 failing feeds while every refresh
    failed on a full disk."""
    feeds.fixed.set()
    listen = f"127.0.0.1:{free_port()}"
    more = FRESH_FEED.format(base=feeds.base_url)
    config = write_config(tmp_path / "feeds.yaml", feeds, listen, more_feeds=more)
    flag = tmp_path / "FULL"
    daemon = FullDiskDaemon(config, listen, flag)
    try:
        daemon.wait_until_serving()
        wait_for(lambda: daemon.health()["status"] == "ok" and daemon.health()["stories"] >= 2)
        flag.touch()  # the disk fills up
        full = f"database or disk is full: {tmp_path / 'news.db'}"
        wait_for(lambda: daemon.health()["refresh"]["error"] == full, timeout=20)
        health = daemon.health()
        assert health["status"] == "degraded"
        assert health["refresh"]["consecutive_failures"] >= 1
        assert health["feeds"]["failing"] == 0  # no feed is to blame
        assert httpx.get(daemon.base_url + "/feed.xml", timeout=5).status_code == 200
        stories = health["stories"]

        flag.unlink()  # space is freed: it recovers by itself
        wait_for(lambda: daemon.health()["refresh"]["error"] is None, timeout=30)
        wait_for(lambda: daemon.health()["stories"] > stories, timeout=20)
        assert daemon.health()["status"] == "ok"
        log = daemon.stderr()
        assert f"refresh cycle failed: {full}; still serving, next try at" in log
        assert "Traceback" not in log, log
    finally:
        daemon.stop()


def test_failed_cycles_wait_longer_each_time_and_a_success_clears_them() -> None:
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    health = CycleHealth(timedelta(seconds=30))
    waits = [health.failed(now, "database or disk is full: /d.db") - now for _ in range(7)]
    minutes = [wait / timedelta(minutes=1) for wait in waits]
    assert minutes == [1, 2, 4, 8, 15, 15, 15]  # two ticks, doubling, at most 15 minutes
    assert health.waiting(now + timedelta(minutes=14)) and not health.waiting(now + waits[-1])
    assert health.report()["error"] == "database or disk is full: /d.db"
    health.succeeded()
    assert health.report() == {
        "error": None, "failed_at": None, "consecutive_failures": 0, "next_try": None,
    }  # fmt: skip
    assert not health.waiting(now)


def test_a_full_database_is_unwritable_other_errors_are_not(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "news.db")
    try:
        storage.db.conn.execute("PRAGMA max_page_count = 1")  # as full as it can be
        with pytest.raises(DatabaseUnwritable, match="database or disk is full: .*news.db"):
            many = [FeedSource(url=f"https://quay.example/rss/{n}") for n in range(500)]
            storage.sync_feeds(many, NOW)
        with pytest.raises(StorageError) as caught:
            with storage.transaction():
                storage.db.execute("INSERT INTO no_such_table VALUES (1)")
        assert not isinstance(caught.value, DatabaseUnwritable)
    finally:
        storage.close()


# --------------------------------------------------------------------------- public_url


@pytest.mark.parametrize(
    ("listen", "base_url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0:8080", "http://localhost:8080"),  # all interfaces: no address to link
        ("[::]:9000", "http://localhost:9000"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_without_public_url_files_name_the_listen_address_in_force(
    listen: str, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: self links said 127.0.0.1:8080 whatever the listen address (the
    container's AGGREGATOR_LISTEN included)."""
    monkeypatch.setenv("AGGREGATOR_LISTEN", listen)
    assert Settings().base_url == base_url
    assert Settings(public_url="https://news.example.org/").base_url == "https://news.example.org"


def self_link(daemon: Daemon, host: str | None) -> str:
    headers = {"Host": host} if host else {}
    body = httpx.get(daemon.base_url + "/feed.json", headers=headers, timeout=5).json()
    return str(body["feed_url"])


def test_without_public_url_served_feeds_link_to_the_address_the_reader_used(
    tmp_path: Path, feeds: FlakyFeeds
) -> None:
    """Issue 17: with public_url unset, readers reaching the service as
    http://aggregator.lan:8080 were given self links to 127.0.0.1."""
    feeds.fixed.set()
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "feeds.yaml", feeds, listen)
    daemon = Daemon(config, listen, tick=0.3)
    try:
        daemon.wait_until_serving()
        assert self_link(daemon, "aggregator.lan:8080") == "http://aggregator.lan:8080/feed.json"
        assert self_link(daemon, "[fd00::5]:8080") == "http://[fd00::5]:8080/feed.json"
        assert self_link(daemon, None) == f"http://{listen}/feed.json"
        # A Host that is not a plain host[:port] is never echoed into the feed.
        assert self_link(daemon, "evil.example/<b>") == f"http://{listen}/feed.json"
        assert self_link(daemon, "a.example:80 onerror=x") == f"http://{listen}/feed.json"
    finally:
        daemon.stop()
    config.write_text(
        config.read_text().replace(
            "settings:\n", "settings:\n  public_url: https://news.example.org\n", 1
        )
    )
    daemon = Daemon(config, listen, tick=0.3)
    try:
        daemon.wait_until_serving()
        assert self_link(daemon, "aggregator.lan:8080") == "https://news.example.org/feed.json"
    finally:
        daemon.stop()


def test_an_unset_public_url_is_warned_about_where_files_or_websub_need_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "feeds.yaml"
    base = "settings:\n  contact_url: mailto:a@quay.example\n  listen: 0.0.0.0:8080\n"
    for extra, warned in (("", False), ("  output_dir: out\n", True)):
        config.write_text(base + extra + "feeds: []\n")
        result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
        warning = "settings.public_url: not set: the files in output_dir and WebSub pings name"
        assert (warning in result.stderr) is warned
        assert ("http://localhost:8080" in result.stderr) is warned
