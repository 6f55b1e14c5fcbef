"""Live reload of feeds.yaml (issue 7): edits applied without a restart, invalid edits
rejected whole and shown on /healthz, restart-only settings reported.

The pure parts (what needs a restart, what goes live) and the watcher are tested in
process; one test edits the file under a real daemon process on 127.0.0.1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.config import Config, load_config
from aggregator.demo import DemoSite
from aggregator.errors import StorageError
from aggregator.reload import ConfigWatcher, live_config, restart_needed
from tests.daemon_harness import Daemon, config_text, free_port, wait_for

FEEDS = """
feeds:
  - name: One
    url: https://one.example/feed.xml
"""


def _write(path: Path, text: str) -> None:
    """Write and move the mtime on, as a save a second later would; whole, as an
    editor saves (a new file renamed over the old): written in place, a poll could
    read it half written, and the test then saw that error instead of its own."""
    draft = path.with_name(path.name + ".draft")
    draft.write_text(text)
    stat = draft.stat()
    os.utime(draft, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    os.replace(draft, path)


def _watcher(tmp_path: Path, text: str) -> tuple[ConfigWatcher, list[Config], Path]:
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    applied: list[Config] = []

    def apply(edited: Config) -> list[str]:
        applied.append(edited)
        return []

    return ConfigWatcher(load_config(path), apply, poll_interval=60), applied, path


def test_listen_and_database_need_a_restart_but_feeds_and_intervals_do_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  listen: 127.0.0.1:8080\n  refresh_interval: 30m\n" + FEEDS)
    running = load_config(path)
    path.write_text(
        "settings:\n  listen: 127.0.0.1:9090\n  database: other.db\n  refresh_interval: 5m\n"
        + FEEDS
        + "  - url: https://two.example/feed.xml\n"
    )
    edited = load_config(path)
    assert restart_needed(running, edited) == ["database", "listen"]
    applied = live_config(running, edited)
    assert applied.settings.listen == "127.0.0.1:8080"  # kept until a restart
    assert applied.database_path == running.database_path
    assert applied.settings.refresh_interval == edited.settings.refresh_interval
    assert [feed.url for feed in applied.feeds] == [feed.url for feed in edited.feeds]


def test_an_unchanged_save_is_ignored_and_a_real_edit_is_applied(tmp_path: Path) -> None:
    watcher, applied, path = _watcher(tmp_path, FEEDS)
    _write(path, FEEDS)  # touched, same bytes
    assert watcher.check() is False
    _write(path, FEEDS + "    tags: [naval]\n")
    assert watcher.check() is True
    assert applied[-1].feeds[0].tags == ("naval",)
    assert watcher.status.report()["error"] is None
    assert watcher.status.report()["reloads"] == 1


def test_invalid_edits_are_rejected_whole_with_file_line_and_field(tmp_path: Path) -> None:
    watcher, applied, path = _watcher(tmp_path, FEEDS)
    invalid = {
        "bad yaml": FEEDS + "  - name: [unclosed\n",
        "unknown key": FEEDS + "    colour: red\n",
        "wrong type": FEEDS + "    interval: often\n",
        "duplicate url": FEEDS + "  - url: https://one.example/feed.xml\n",
    }
    for problem, text in invalid.items():
        _write(path, text)
        assert watcher.check() is True, problem
        error = watcher.status.report()["error"]
        assert error and str(path) in error, problem
        assert f"{path}:" in error and error.split(f"{path}:", 1)[1][:1].isdigit(), problem
    assert "colour" in _rejection(watcher, path, FEEDS + "    colour: red\n")
    assert applied == []  # nothing of any invalid edit was applied
    _write(path, FEEDS + "    tags: [air]\n")
    watcher.check()
    assert watcher.status.report()["error"] is None
    assert len(applied) == 1


def _break(path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make feeds.yaml unreadable; return the reason the watcher should give."""
    if how == "removed":
        path.unlink()
        return "No such file or directory"
    if how == "a directory":
        path.unlink()
        path.mkdir()
        return "Is a directory"
    # Mode 000 does not stop root (these tests may run as root): refuse the open instead.
    path.chmod(0)
    opener = Path.open

    def refusing_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return opener(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)
    return "Permission denied"


@pytest.mark.parametrize("how", ["removed", "a directory", "mode 000"])
def test_an_unreadable_feeds_yaml_is_reported_like_a_rejected_edit(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: a removed, unreadable or directory-replaced feeds.yaml was silent."""
    watcher, applied, path = _watcher(tmp_path, FEEDS)
    reason = _break(path, how, monkeypatch)
    assert watcher.check() is False  # one look is not enough: a save may delete first
    assert watcher.status.report()["error"] is None
    assert watcher.check() is True
    error = watcher.status.report()["error"]
    assert error == f"{path}: cannot read config: {reason}"
    assert watcher.status.report()["rejected_at"] is not None
    assert f"{error} (still running the last good config)" in caplog.text
    assert watcher.check() is False  # reported once, not every two seconds
    assert caplog.text.count("cannot read config") == 1
    assert applied == []  # the last good config stays

    monkeypatch.undo()
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.chmod(0o644)
    _write(path, FEEDS)  # back as it was: read again, and the error clears
    assert watcher.check() is True
    assert watcher.status.report()["error"] is None
    assert len(applied) == 1


def test_a_save_that_deletes_before_it_writes_is_no_error(tmp_path: Path) -> None:
    watcher, applied, path = _watcher(tmp_path, FEEDS)
    path.unlink()
    assert watcher.check() is False
    _write(path, FEEDS + "    tags: [naval]\n")
    assert watcher.check() is True
    assert watcher.status.report()["error"] is None
    assert applied[-1].feeds[0].tags == ("naval",)


def test_a_file_back_from_unreadable_with_a_rejected_edit_is_rejected_again(
    tmp_path: Path,
) -> None:
    watcher, applied, path = _watcher(tmp_path, FEEDS)
    _write(path, FEEDS + "    colour: red\n")
    watcher.check()
    text = path.read_text()
    path.unlink()
    watcher.check()
    watcher.check()
    assert "cannot read config" in str(watcher.status.report()["error"])
    path.write_text(text)  # the same bytes as the rejected edit
    assert watcher.check() is True
    assert "colour: unknown key" in str(watcher.status.report()["error"])
    assert applied == []


def test_an_edit_that_could_not_be_applied_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid edit that the database could not take (a full disk: issue 19) was
    never tried again: the daemon ran the old feeds, /healthz said "could not apply",
    until the admin saved the file once more. It is retried every ``retry_after``."""
    path = tmp_path / "feeds.yaml"
    path.write_text(FEEDS)
    applied: list[Config] = []
    disk_full = [True]

    def apply(edited: Config) -> list[str]:
        if disk_full[0]:
            raise StorageError(f"database or disk is full: {tmp_path / 'db.sqlite'}")
        applied.append(edited)
        return []

    watcher = ConfigWatcher(load_config(path), apply, poll_interval=60, retry_after=0)
    _write(path, FEEDS + "    tags: [naval]\n")
    assert watcher.check() is True
    assert "could not apply: database or disk is full" in str(watcher.status.report()["error"])
    watcher.check()  # still full: still reported, logged once
    assert caplog.text.count("could not apply") == 1
    disk_full[0] = False  # room again; the file is not touched
    assert watcher.check() is True
    assert watcher.status.report()["error"] is None
    assert applied[-1].feeds[0].tags == ("naval",)
    assert watcher.check() is False  # applied: nothing left to retry


def _rejection(watcher: ConfigWatcher, path: Path, text: str) -> str:
    _write(path, text + "\n")  # different bytes from the last look
    watcher.check()
    return str(watcher.status.report()["error"])


def _hits(site: DemoSite, outlet: dict[str, str]) -> int:
    return site.hits.get(outlet["feed"], 0)


def test_edits_under_a_running_daemon(tmp_path: Path) -> None:
    with DemoSite() as site:
        first, second, third = site.manifest()["outlets"][:3]
        listen = f"127.0.0.1:{free_port()}"
        database = tmp_path / "db.sqlite"
        config = tmp_path / "feeds.yaml"

        def text(outlets: list[dict[str, str]], listen: str = listen) -> str:
            return config_text(
                site, listen=listen, database=database, outlets=outlets, feed_extra="interval: 1h"
            )

        _write(config, text([first, second]))
        daemon = Daemon(config, listen)
        try:
            daemon.wait_until_serving()
            wait_for(lambda: _hits(site, second) >= 1)
            # A new feed is fetched within seconds; a shortened interval takes effect.
            fast = text([first, second, third]).replace(
                f'"{site.base_url}{second["feed"]}"\n    interval: 1h',
                f'"{site.base_url}{second["feed"]}"\n    interval: 1s',
            )
            assert "interval: 1s" in fast
            _write(config, fast)
            wait_for(lambda: _hits(site, third) >= 1, timeout=10)
            before = _hits(site, second)
            wait_for(lambda: _hits(site, second) >= before + 2, timeout=10)
            assert daemon.health()["config"]["reloads"] == 1

            # An invalid edit: rejected whole, shown on /healthz, the daemon carries on.
            _write(config, fast + "    colour: red\n")
            health = wait_for(lambda: (h := daemon.health())["config"]["error"] and h)
            assert health["status"] == "degraded"
            assert "colour" in health["config"]["error"]
            assert str(config) in health["config"]["error"]
            assert httpx.get(daemon.base_url + "/feed.xml", timeout=5).status_code == 200
            polled = _hits(site, second)
            wait_for(lambda: _hits(site, second) > polled, timeout=10)  # last good config

            # Fixed, with the fast feed removed and the listen address changed.
            _write(config, text([first, third], listen=f"127.0.0.1:{free_port()}"))
            health = wait_for(lambda: (h := daemon.health())["config"]["error"] is None and h)
            assert health["config"]["restart_needed"] == ["listen"]
            assert health["feeds"]["total"] == 2
            time.sleep(1.0)  # a fetch in flight at the reload may still land
            settled = _hits(site, second)
            time.sleep(2.5)  # at interval 1s it would have been fetched twice by now
            assert _hits(site, second) == settled
        finally:
            assert daemon.stop() == 0
