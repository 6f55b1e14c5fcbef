"""``kill -9`` of ``refresh`` and ``run`` at random moments: nothing lost, nothing
stored twice, the database intact, no process left behind (issue 19).

Not a test: run it by hand::

    .venv/bin/python -m bench.kill_audit [--kills 50] [--feeds 12] [--seed 19]

It serves an invented corpus (bench/corpus.py: messy 40-70 KB article pages, wire
copies, related reports) on loopback ports, and the feeds grow by ``--step`` items
each round, so every round has new articles to fetch, extract, group and store. Each
round starts the real ``aggregator refresh`` (even rounds) or ``aggregator run`` (odd
rounds) in a session of its own, waits a random moment (up to 1.2 times how long an
uninterrupted refresh of the round before took) and sends SIGKILL to the main
process alone, as an OOM killer or a crash would. Then:

* **processes**: the session's live processes are counted until none is left (the
  extraction workers and multiprocessing's resource tracker must notice their parent
  is gone); any still there after ``--grace`` seconds is reported, then killed;
* **integrity**: ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``;
* **lost**: every article stored before the kill is still stored after it;
* **duplicated**: no article (feed, canonical URL) is stored twice, no canonical URL
  belongs to two live stories, and the published JSON Feed (``aggregator feed``)
  lists each story once and each source once.

* **recovered**: one uninterrupted ``refresh`` then leaves every item the feeds list
  stored exactly once (nothing a kill interrupted is lost for good); its duration
  sets the next round's window, so each kill falls within a refresh of one round's
  new items, at any moment from the start of the process to its last commit.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.corpus import Corpus, build_corpus, resolve

ROOT = Path(__file__).resolve().parent.parent
_ITEM = re.compile(rb"<item>.*?</item>|<entry>.*?</entry>", re.S)


# --------------------------------------------------------------------------- the corpus


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed client resets its connections: expected here


class GrowingFeeds:
    """The corpus on loopback ports; each feed lists its first ``visible`` items."""

    def __init__(self, corpus: Corpus, feeds_per_site: int) -> None:
        self.visible = 0
        self._servers = [
            _QuietServer(("127.0.0.1", 0), self._handler()) for _ in range(corpus.sites)
        ]
        ports = [server.server_address[1] for server in self._servers]
        self.bodies = {path: resolve(body, ports) for path, body in corpus.bodies.items()}
        self.feed_urls = [
            f"http://127.0.0.1:{ports[n // feeds_per_site]}{path}"
            for n, path in enumerate(corpus.feed_paths)
        ]
        for server in self._servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def feed_body(self, path: str) -> bytes:
        body = self.bodies[path]
        items = list(_ITEM.finditer(body))
        if len(items) <= self.visible:
            return body
        cut_from, cut_to = items[self.visible].start(), items[-1].end()
        return body[:cut_from] + body[cut_to:]

    def listed_urls(self) -> set[str]:
        """The article links the feeds list now."""
        found: set[str] = set()
        for url in self.feed_urls:
            path = "/" + url.split("/", 3)[3]
            links = re.findall(rb'<link>([^<]+)</link>|<link href="([^"]+)"', self.feed_body(path))
            found.update((a or b).decode() for a, b in links if (a or b).endswith(b".html"))
        return found

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                if self.path not in feeds.bodies:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                is_feed = self.path.endswith(".xml")
                body = feeds.feed_body(self.path) if is_feed else feeds.bodies[self.path]
                self.send_response(200)
                kind = "application/xml" if is_feed else "text/html; charset=utf-8"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


# --------------------------------------------------------------------------- processes


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry))
    return members


def start(command: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), command],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True,
        )  # fmt: skip


@dataclass
class Leftovers:
    seconds: float  # until the session emptied (or the grace ran out)
    left: list[int]  # still alive after the grace


def wait_for_session_to_empty(sid: int, grace: float) -> Leftovers:
    started = time.monotonic()
    while time.monotonic() - started < grace:
        if not session_members(sid):
            return Leftovers(time.monotonic() - started, [])
        time.sleep(0.05)
    left = session_members(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Leftovers(grace, left)


# --------------------------------------------------------------------------- the checks


def integrity(database: Path) -> str:
    with sqlite3.connect(database, timeout=30) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchall()
        foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
    result = "ok" if check == [("ok",)] else "; ".join(str(row[0]) for row in check[:3])
    return result if not foreign else f"{result}; foreign keys: {foreign[:3]}"


def stored(database: Path) -> dict[tuple[str, str], int]:
    """(feed URL, entry key) -> how many rows (UNIQUE makes it 1)."""
    if not database.exists():
        return {}
    with sqlite3.connect(database, timeout=30) as conn:
        rows = conn.execute(
            "SELECT f.url, a.entry_key, count(*) FROM articles a JOIN feeds f ON f.id = a.feed_id"
            " GROUP BY f.url, a.entry_key"
        ).fetchall()
    return {(url, key): count for url, key, count in rows}


def duplicates(database: Path, config: Path) -> list[str]:
    """Each article once: per feed by canonical URL, per live story by canonical URL,
    and in the published JSON Feed."""
    problems: list[str] = []
    if not database.exists():
        return problems
    with sqlite3.connect(database, timeout=30) as conn:
        twice = conn.execute(
            "SELECT feed_id, canonical_url, count(*) FROM articles"
            " GROUP BY feed_id, canonical_url HAVING count(*) > 1"
        ).fetchall()
        problems += [f"stored twice in feed {f}: {url} ({n} rows)" for f, url, n in twice]
        split = conn.execute(
            "SELECT canonical_url, count(DISTINCT story_id) FROM articles"
            " GROUP BY canonical_url HAVING count(DISTINCT story_id) > 1"
        ).fetchall()
        problems += [f"{url} in {n} stories" for url, n in split]
    published = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "feed", "--format", "json"]
        + ["--limit", "1000"],
        cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    if published.returncode != 0:
        return [*problems, f"aggregator feed failed: {published.stderr.decode()[-300:]}"]
    items = json.loads(published.stdout)["items"]
    ids = [item["id"] for item in items]
    if len(ids) != len(set(ids)):
        problems.append("a story is published twice")
    sources = [
        (source["feed"], source["url"])
        for item in items
        for source in item["_aggregator"]["sources"]
    ]
    if len(sources) != len(set(sources)):
        problems.append("a source is published twice")
    return problems


# --------------------------------------------------------------------------- the rounds


@dataclass
class Round:
    command: str
    moment: float
    lost: int
    problems: list[str]
    integrity: str
    leftovers: Leftovers
    new: int  # articles stored by this round before the kill
    due: int  # articles the round had to store
    missing: int = 0  # listed but not stored after the uninterrupted refresh


@dataclass
class Audit:
    rounds: list[Round] = field(default_factory=list)

    def report(self) -> None:
        for command in ("refresh", "run"):
            rounds = [r for r in self.rounds if r.command == command]
            if not rounds:
                continue
            empties = [r.leftovers.seconds for r in rounds if not r.leftovers.left]
            print(
                f"{command:<8} {len(rounds)} kills: lost {sum(r.lost for r in rounds)},"
                f" missing after recovery {sum(r.missing for r in rounds)},"
                f" duplicate problems {sum(len(r.problems) for r in rounds)},"
                f" integrity ok {sum(r.integrity == 'ok' for r in rounds)}/{len(rounds)},"
                f" processes left behind {sum(len(r.leftovers.left) for r in rounds)}"
                f" (session empty after median {statistics.median(empties or [0]) * 1000:.0f} ms,"
                f" max {max(empties or [0]) * 1000:.0f} ms); killed before any new article"
                f" was stored {sum(r.new == 0 for r in rounds)}, between commits"
                f" {sum(0 < r.new < r.due for r in rounds)}, after the last"
                f" {sum(r.new >= r.due for r in rounds)}"
            )


def one_round(
    number: int, args: argparse.Namespace, feeds: GrowingFeeds, directory: Path, span: float
) -> tuple[Round, float]:
    config, database = directory / "feeds.yaml", directory / "audit.db"
    command = "refresh" if number % 2 == 0 else "run"
    feeds.visible = min(args.items, args.start + (number + 1) * args.step)
    before = stored(database)
    due = len(feeds.listed_urls()) - len(before)
    moment = random.uniform(0.0, span)
    process = start(command, config, directory / f"{command}.log")
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)  # the main process alone
    process.wait()
    leftovers = wait_for_session_to_empty(process.pid, args.grace)
    after = stored(database)
    lost = len(set(before) - set(after))
    problems = duplicates(database, config)
    new = len(set(after) - set(before))
    result = Round(command, moment, lost, problems, integrity(database), leftovers, new, due)
    result.missing, duration = recover(feeds, directory)
    good = not (lost or problems or leftovers.left or result.missing)
    status = "ok" if good and result.integrity == "ok" else "!!"
    print(
        f"{status} {number + 1:>3} {command:<7} killed at {moment:5.2f} s: {new:>2}/{due} stored,"
        f" lost {lost}, integrity {result.integrity}, left {leftovers.left or 0}"
        f" ({leftovers.seconds * 1000:.0f} ms), missing after recovery {result.missing}"
        f" ({duration:.1f} s){'; ' + '; '.join(problems) if problems else ''}",
        flush=True,
    )
    return result, 1.2 * duration


def recover(feeds: GrowingFeeds, directory: Path) -> tuple[int, float]:
    """One uninterrupted refresh; how many listed articles are still not stored, and
    how long it took (the next round's window)."""
    started = time.monotonic()
    start("refresh", directory / "feeds.yaml", directory / "refresh.log").wait()
    duration = time.monotonic() - started
    with sqlite3.connect(directory / "audit.db", timeout=30) as conn:
        urls = {row[0] for row in conn.execute("SELECT url FROM articles")}
    return len(feeds.listed_urls() - urls), duration


def final_check(feeds: GrowingFeeds, directory: Path) -> None:
    """One refresh to the end: every item the feeds list stored exactly once."""
    config, database = directory / "feeds.yaml", directory / "audit.db"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "refresh"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    print(f"final refresh ({time.monotonic() - started:.1f} s): {done.stdout.strip()}")
    with sqlite3.connect(database) as conn:
        urls = [row[0] for row in conn.execute("SELECT url FROM articles")]
    listed = feeds.listed_urls()
    missing = listed - set(urls)
    print(
        f"after the last kill and one uninterrupted refresh: {len(urls)} articles stored,"
        f" {len(listed)} listed by the feeds, {len(missing)} missing,"
        f" {len(urls) - len(set(urls))} stored twice;"
        f" integrity {integrity(database)}; duplicates {duplicates(database, config) or 'none'}"
    )


def write_config(directory: Path, feeds: GrowingFeeds, port: int) -> None:
    lines = [
        "settings:",
        f"  database: {directory / 'audit.db'}",
        f"  output_dir: {directory / 'out'}",
        f"  listen: 127.0.0.1:{port}",
        "  log_level: WARNING",
        "  contact_url: mailto:audit@example.invalid",
        "  allow_private_addresses: true  # the corpus is on 127.0.0.1",
        "  refresh_interval: 2s  # every feed is due when `run` starts",
        "feeds:",
        *(f"  - url: {url}" for url in feeds.feed_urls),
    ]
    (directory / "feeds.yaml").write_text("\n".join(lines) + "\n")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--feeds", type=int, default=12)
    parser.add_argument("--items", type=int, default=60, help="items per feed at most")
    parser.add_argument("--start", type=int, default=4, help="items per feed in round 1")
    parser.add_argument("--step", type=int, default=1, help="new items per feed each round")
    parser.add_argument("--grace", type=float, default=10, help="seconds for the session to end")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    random.seed(args.seed)
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.feeds} feeds, +{args.step}"
        f" items each per round, {args.kills} kills (refresh and run by turns)"
    )
    corpus = build_corpus(args.feeds, args.items, feeds_per_site=4, changed_share=0)
    feeds = GrowingFeeds(corpus, feeds_per_site=4)
    audit = Audit()
    try:
        with tempfile.TemporaryDirectory(prefix="kill-audit-") as tmp:
            directory = Path(tmp)
            write_config(directory, feeds, free_port())
            # How long one round's refresh takes uninterrupted: the kills fall within it.
            feeds.visible = args.start
            started = time.monotonic()
            start("refresh", directory / "feeds.yaml", directory / "refresh.log").wait()
            span = 1.2 * (time.monotonic() - started)
            print(f"an uninterrupted first refresh: {span / 1.2:.1f} s; kills within {span:.1f} s")
            for number in range(args.kills):
                done, span = one_round(number, args, feeds, directory, span)
                audit.rounds.append(done)
            audit.report()
            final_check(feeds, directory)
    finally:
        feeds.close()


if __name__ == "__main__":
    main()
