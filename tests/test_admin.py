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
from tests.daemon_harness import Daemon, free_port, wait_for

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Quay Notes</title>
<link>http://quay.example/</link><item><title>Tug fleet renewal begins</title>
<link>http://quay.example/tugs</link><guid>quay-tugs</guid>
<description>The harbour board ordered four new tugs.</description></item></channel></rss>"""


class FlakyFeeds:
    """Feeds on loopback: /broken.xml answers 500 until ``fixed`` is set; hits counted."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.fixed = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                ok = self.path == "/good.xml" or owner.fixed.is_set()
                body = FEED if ok else b"oops"
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


def write_config(path: Path, feeds: FlakyFeeds, listen: str, *, extra: str = "") -> Path:
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
        "  - name: Good\n"
        f"    url: {feeds.base_url}/good.xml\n"
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
