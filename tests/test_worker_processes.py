"""Worker processes never outlive their parent, and Ctrl-C is the parent's business
(issue 19 item 7, issue 17 item 6), over real processes.

Each command runs in a session of its own, so its process group holds exactly the
main process, its extraction workers and multiprocessing's resource tracker. The
tests ``kill -9`` the main process alone (as an OOM killer or a crash would) and
wait, with a generous bound, for the group to empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from aggregator.demo import DemoSite
from aggregator.processes import spawning, worker_initializer
from tests.daemon_harness import Daemon, config_text, free_port, wait_for
from tests.loopback import Route, Site

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# Main process, resource tracker, one extraction worker.
WITH_A_WORKER = 3


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry))
    return members


def kill_group(pgid: int) -> None:
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_group_empties(pgid: int, timeout: float = 30) -> None:
    try:
        wait_for(lambda: not group_members(pgid), timeout=timeout)
    except AssertionError:
        left = group_members(pgid)
        kill_group(pgid)
        raise AssertionError(f"processes left behind: {left}") from None


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


def _daemon(site: DemoSite, tmp_path: Path) -> Daemon:
    listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text(site, listen=listen, database=tmp_path / "db.sqlite"))
    daemon = Daemon(config, listen)
    daemon.wait_until_serving()
    wait_for(lambda: len(group_members(daemon.process.pid)) >= WITH_A_WORKER, timeout=60)
    return daemon


def test_kill_9_of_run_leaves_no_worker_or_resource_tracker(site: DemoSite, tmp_path: Path) -> None:
    daemon = _daemon(site, tmp_path)
    daemon.process.send_signal(signal.SIGKILL)  # the main process only
    daemon.process.wait(timeout=10)
    assert_group_empties(daemon.process.pid)


def test_ctrl_c_stops_run_cleanly_without_worker_tracebacks(site: DemoSite, tmp_path: Path) -> None:
    daemon = _daemon(site, tmp_path)
    os.killpg(daemon.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    try:
        assert daemon.process.wait(timeout=60) == 0
    finally:
        kill_group(daemon.process.pid)
    log = daemon.stderr()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert_group_empties(daemon.process.pid)


def test_sigterm_to_the_whole_group_stops_run_cleanly(site: DemoSite, tmp_path: Path) -> None:
    """As systemd stops a service (every process of it gets SIGTERM)."""
    daemon = _daemon(site, tmp_path)
    os.killpg(daemon.process.pid, signal.SIGTERM)
    try:
        assert daemon.process.wait(timeout=60) == 0
    finally:
        kill_group(daemon.process.pid)
    log = daemon.stderr()
    assert "Traceback" not in log and "BrokenPipe" not in log, log
    assert_group_empties(daemon.process.pid)


ARTICLE = b"<html><body><article>" + b"<p>The corvette left the yard for trials.</p>" * 40
ARTICLE += b"</article></body></html>"


def _feed(base: str, paths: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Report {path}</title><link>{base}{path}</link><guid>{path}</guid></item>"
        for path in paths
    )
    channel = f"<channel><title>T</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()


def test_kill_9_of_refresh_leaves_no_worker_or_resource_tracker(tmp_path: Path) -> None:
    release = threading.Event()
    html = {"Content-Type": "text/html"}
    with Site() as site:
        site.routes.update(
            {
                "/fast.xml": Route(body=_feed(site.base_url, ["/fast"])),
                "/fast": Route(body=ARTICLE, headers=html),
                # A second feed whose page hangs keeps the refresh alive after the
                # first page's extraction has started the worker.
                "/slow.xml": Route(body=_feed(site.base_url, ["/slow"])),
                "/slow": Route(body=ARTICLE, headers=html, hold=release),
            }
        )
        config = tmp_path / "feeds.yaml"
        config.write_text(
            "settings:\n  database: db.sqlite\n  workers: 1\n  allow_private_addresses: true\n"
            "  timeout: 60s\n"
            f"feeds:\n  - url: {site.base_url}/fast.xml\n  - url: {site.base_url}/slow.xml\n"
        )
        with (tmp_path / "refresh.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--config", str(config), "refresh"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        try:
            wait_for(lambda: len(group_members(process.pid)) >= WITH_A_WORKER, timeout=60)
            wait_for(lambda: "/slow" in site.hits, timeout=30)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert_group_empties(process.pid)
        finally:
            release.set()
            kill_group(process.pid)


_WITHOUT_PRCTL = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from aggregator.processes import worker_initializer
pool = ProcessPoolExecutor(
    1, mp_context=get_context("spawn"), initializer=worker_initializer,
    initargs=(os.getpid(), False),
)
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(120)
"""


def test_without_prctl_a_thread_watching_the_parent_ends_the_worker() -> None:
    """The portable fallback (not Linux, or prctl refused)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WITHOUT_PRCTL],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        worker = int(process.stdout.readline())
        assert worker in group_members(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert_group_empties(process.pid)
    finally:
        kill_group(process.pid)
        if process.stdout is not None:
            process.stdout.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_heeds_sigterm_from_its_parent_only() -> None:
    """systemd's SIGTERM to every process leaves the stopping to the parent; the
    parent's own SIGTERM (a broken pool's clean-up) still ends a worker."""
    pool = ProcessPoolExecutor(
        1, mp_context=get_context("spawn"), initializer=worker_initializer, initargs=(os.getpid(),)
    )
    try:
        with spawning():
            worker = pool.submit(os.getpid).result(timeout=60)
        for signum in (signal.SIGTERM, signal.SIGINT):  # sent by another process
            send = f"import os; os.kill({worker}, {int(signum)})"
            subprocess.run([sys.executable, "-c", send], check=True)
        assert pool.submit(os.getpid).result(timeout=60) == worker  # still there, still working
        os.kill(worker, signal.SIGTERM)  # sent by its parent
        wait_for(lambda: not alive(worker), timeout=30)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_workers_outlive_the_thread_that_started_them() -> None:
    """The daemon starts its extraction workers from a refresh's page thread, which
    ends with the refresh. The kernel's parent-death signal fires when that *thread*
    ends; it must not kill the workers (it did whenever a library had started a
    thread in the worker before its initializer ran: numpy's BLAS threads), or every
    later refresh finds the pool broken and fails its feeds."""
    from aggregator.extract.pool import ExtractionPool

    results: list[object] = []
    with ExtractionPool(1) as pool:

        def extract_on_a_thread() -> None:
            def extract() -> None:
                results.extend(pool.extract_many([(ARTICLE, "http://audit.test/a")]))

            thread = threading.Thread(target=extract)
            thread.start()
            thread.join()

        extract_on_a_thread()  # starts the worker; the thread then ends
        extract_on_a_thread()  # the same worker, from another thread
    assert len(results) == 2 and all(article is not None for article in results)


def _spawned_workers() -> list[int]:
    """This process's multiprocessing workers (not its resource tracker)."""
    me = os.getpid()
    children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_dead_extraction_worker_is_replaced_not_the_end_of_extraction() -> None:
    """A worker killed (the OOM killer, a crash in a parser) broke the pool for good:
    every later refresh failed its feeds with BrokenProcessPool until a restart."""
    from aggregator.extract.pool import ExtractionPool

    with ExtractionPool(1) as pool:
        assert next(iter(pool.extract_many([(ARTICLE, "http://audit.test/a")]))) is not None
        for worker in _spawned_workers():
            os.kill(worker, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in _spawned_workers()), timeout=30)
        again = list(pool.extract_many([(ARTICLE, "http://audit.test/b")] * 2))
        assert len(again) == 2 and all(article is not None for article in again)


def test_released_workers_exit_and_the_next_job_starts_new_ones() -> None:
    """``release()`` gives the workers' memory back (a one-shot refresh does it before
    its refinement); the pool still extracts afterwards, on new workers."""
    from aggregator.extract.pool import ExtractionPool

    with ExtractionPool(1) as pool:
        assert next(iter(pool.extract_many([(ARTICLE, "http://audit.test/a")]))) is not None
        first = _spawned_workers()
        assert first
        pool.release()
        wait_for(lambda: not any(alive(pid) for pid in first), timeout=30)
        again = list(pool.extract_many([(ARTICLE, "http://audit.test/b")]))
        assert len(again) == 1 and again[0] is not None
        assert _spawned_workers() and not set(_spawned_workers()) & set(first)
    assert _spawned_workers() == []  # closed: none left, none started again
