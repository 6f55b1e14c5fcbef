"""A real daemon process on 127.0.0.1 for the issue-7 tests (reload, crash, concurrency).

The daemon runs ``run_daemon`` with a short scheduler tick and config poll, in a
session of its own, so a test can SIGKILL it with its extraction workers at once.
Feeds come from the invented sample site (``aggregator.demo``) served in-process, so
the test can count the requests each feed got.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aggregator.demo import DemoSite
from aggregator.storage import Storage

_LAUNCH = """
import sys
from datetime import timedelta
from aggregator.cli.common import setup_logging as _setup_logging
from aggregator.config import load_config
from aggregator.daemon import run_daemon
config = load_config(sys.argv[1])
_setup_logging(config.settings.log_level)
run_daemon(config, tick=timedelta(seconds=float(sys.argv[2])), poll_interval=float(sys.argv[3]))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_text(
    site: DemoSite,
    *,
    listen: str,
    database: Path,
    outlets: list[dict[str, Any]] | None = None,
    settings: str = "",
    feed_extra: str = "",
) -> str:
    """A feeds.yaml for the sample outlets (all, or those given), loopback allowed."""
    chosen = site.manifest()["outlets"] if outlets is None else outlets
    lines = [
        "settings:",
        f"  listen: {json.dumps(listen)}",
        f"  database: {json.dumps(str(database))}",
        "  allow_private_addresses: true",
        "  workers: 1",
        "  log_level: WARNING",
        *(f"  {line}" for line in settings.splitlines() if line.strip()),
        "feeds:",
    ]
    for outlet in chosen:
        lines += [
            f"  - name: {json.dumps(outlet['name'])}",
            f"    url: {json.dumps(site.base_url + outlet['feed'])}",
            *(f"    {line}" for line in feed_extra.splitlines() if line.strip()),
        ]
    return "\n".join(lines) + "\n"


class Daemon:
    """``aggregator run`` as a child process, with helpers to read it and stop it."""

    def __init__(self, config: Path, listen: str, *, tick: float = 0.5, poll: float = 0.3):
        self.config = config
        self.base_url = f"http://{listen}"
        self.log = config.with_name(f"daemon-{time.monotonic_ns()}.log")
        with self.log.open("wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(config), str(tick), str(poll)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: SIGKILL reaches the workers
            )

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early: {self.stderr()}")
            try:
                httpx.get(self.base_url + "/healthz", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("daemon did not start serving in time")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.base_url + "/healthz", timeout=5).json()
        return result

    def kill9(self) -> None:
        """SIGKILL the daemon and its worker processes, as a power cut would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM; the exit status. Kills it if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition: Any, timeout: float = 15, interval: float = 0.1) -> Any:
    """Poll ``condition()`` until truthy; return its value or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def stored_groups(database: Path) -> set[frozenset[str]]:
    """The stories as sets of (feed URL, article URL): comparable across databases."""
    storage = Storage.open(database)
    try:
        rows = storage.db.query(
            "SELECT a.story_id, f.url AS feed, a.url FROM articles a"
            " JOIN feeds f ON f.id = a.feed_id"
        )
        groups: dict[str, set[str]] = {}
        for row in rows:
            groups.setdefault(row["story_id"], set()).add(f"{row['feed']} {row['url']}")
    finally:
        storage.close()
    return {frozenset(members) for members in groups.values()}
