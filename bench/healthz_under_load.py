"""/healthz latency while 16 clients ask for distinct, uncached slices (issue 19).

Not a test: run it by hand::

    .venv/bin/python bench/healthz_under_load.py [--seconds 20] [--baseline-ref REF]

It builds a throwaway database of ``--stories`` invented stories (about 4 KB of text
each, two to four sources), starts the real server in a child process (the daemon's
own uvicorn settings when the tree has them), and measures:

* ``idle``: /healthz alone, one request at a time;
* ``load``: /healthz every 0.25 s while ``--clients`` clients each request
  ``/feed.xml?limit=N`` (also .atom and .json) with an N no one asked before, so every
  request misses the render cache and renders anew.

With ``--baseline-ref REF`` (e.g. ``main`` or a commit) the same is measured in the
same run against that revision (``git archive`` into a temporary folder), and the
ratio of the medians is printed. The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("feed.xml", "feed.atom", "feed.json")
PROBE_EVERY = 0.25  # seconds between /healthz probes under load


# --- the site -----------------------------------------------------------------------


def build_site(directory: Path, stories: int) -> Path:
    """feeds.yaml plus a database of ``stories`` stories; returns the config path.
    Runs in the child, with the tree under test, so its own migrations make the file."""
    from aggregator.config import load_config
    from aggregator.storage import Storage
    from bench.serve_bench import invented_text

    try:  # the layout of issue 14
        from aggregator.models import Assignment, NewArticle
    except ImportError:  # a baseline revision from before it
        from aggregator.cluster import Assignment  # type: ignore[attr-defined,no-redef]
        from aggregator.storage import NewArticle  # type: ignore[attr-defined,no-redef]

    config_path = directory / "feeds.yaml"
    feeds = "".join(
        f"  - name: Outlet {n}\n    url: https://outlet{n}.test/feed\n    tags: [t{n % 3}]\n"
        for n in range(1, 5)
    )
    config_path.write_text(f"settings:\n  database: bench.db\n  feed_limit: 50\nfeeds:\n{feeds}")
    config = load_config(config_path)
    storage = Storage.open(config.database_path)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    storage.sync_feeds(config.feeds, start)
    with storage.transaction():
        for story in range(stories):
            text = invented_text(story)
            html = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
            for copy in range(2 + story % 3):
                moment = start + timedelta(minutes=story * 30 + copy)
                key = f"s{story}-{copy}"
                article = NewArticle(
                    feed_id=copy + 1, entry_key=key, guid=None,
                    url=f"https://outlet{copy + 1}.test/{key}",
                    canonical_url=f"https://outlet{copy + 1}.test/{key}",
                    title=f"Story {story}: {' '.join(text.split()[:8])}", author=None,
                    summary="", feed_content="", text=text, html=html, image=None,
                    published_at=moment, fetched_at=moment, extraction_status="extracted",
                    extraction_note="", signature=None, bands=(),
                )  # fmt: skip
                existing = f"story-{story}" if copy else None
                assignment = Assignment(existing, "url" if copy else "new", 1.0 if copy else None)
                storage.add_article(article, assignment, f"story-{story}")
    storage.close()
    return config_path


def serve(config_path: str, port: int) -> None:
    """The child: the real app, with the daemon's uvicorn settings when it has them."""
    import importlib

    import uvicorn

    from aggregator.config import load_config

    try:  # the layout of issue 14
        server = importlib.import_module("aggregator.serve.server")
    except ImportError:  # a baseline revision from before it
        server = importlib.import_module("aggregator.server")
    config = load_config(config_path)
    app = server.create_app(config)
    settings = None
    for limits in ("aggregator.serve.http_limits", "aggregator.http_limits"):
        try:
            settings = importlib.import_module(limits).uvicorn_config
            break
        except ImportError:
            continue
    if settings is not None:
        uvicorn.Server(settings(app, "127.0.0.1", port)).run()
    else:  # a tree from before the limits: uvicorn's defaults, as its daemon had
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the measurement ------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    renders: int = 0
    refused: int = 0  # 503: the server shed the load
    errors: int = 0


async def _probe(client: object, tally: Tally, stop_at: float, every: float) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            response = await client.get("/healthz", timeout=60)
            response.raise_for_status()
            tally.latencies.append(time.monotonic() - started)
        except httpx.HTTPError:
            tally.errors += 1
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))


async def _slices(client: object, tally: Tally, stop_at: float, numbers: list[int]) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    while time.monotonic() < stop_at:
        numbers[0] += 1
        limit = 1 + numbers[0] % 1000
        path = f"/{FORMATS[(numbers[0] // 1000) % len(FORMATS)]}?limit={limit}"
        try:
            response = await client.get(path, timeout=120)
        except httpx.HTTPError:
            tally.errors += 1
            continue
        if response.status_code == 503:
            tally.refused += 1
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        elif response.status_code == 200:
            tally.renders += 1
        else:
            tally.errors += 1


async def measure(base_url: str, clients: int, seconds: float) -> tuple[Tally, Tally]:
    import httpx

    idle = Tally()
    async with httpx.AsyncClient(base_url=base_url) as probe:
        await _probe(probe, idle, time.monotonic() + 3, 0.1)
        loaded = Tally()
        stop_at = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base_url, limits=limits) as load:
            numbers = [0]
            await asyncio.gather(
                _probe(probe, loaded, stop_at, PROBE_EVERY),
                *(_slices(load, loaded, stop_at, numbers) for _ in range(clients)),
            )
    return idle, loaded


# --- processes and revisions ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def export_revision(ref: str, directory: Path) -> Path:
    """The tree of ``ref`` (aggregator/ and bench/) unpacked into ``directory``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "aggregator", "bench"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def run_child(source: Path, *arguments: str) -> subprocess.Popen[bytes]:
    """This script, importing ``aggregator`` (and bench.serve_bench) from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.Popen([sys.executable, __file__, *arguments], cwd=source, env=env)


def measure_tree(source: Path, args: argparse.Namespace) -> tuple[Tally, Tally]:
    with tempfile.TemporaryDirectory(prefix="healthz-bench-") as tmp:
        builder = run_child(source, "--build", tmp, str(args.stories))
        if builder.wait() != 0:
            raise SystemExit("building the site failed")
        port = free_port()
        child = run_child(source, "--serve", str(Path(tmp) / "feeds.yaml"), str(port))
        try:
            _wait_for(port)
            return asyncio.run(measure(f"http://127.0.0.1:{port}", args.clients, args.seconds))
        finally:
            child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=20)
            child.kill()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit("server did not start")


def report(name: str, idle: Tally, loaded: Tally, seconds: float) -> float:
    median = statistics.median(loaded.latencies) if loaded.latencies else float("inf")
    p90 = (
        statistics.quantiles(loaded.latencies, n=10, method="inclusive")[-1]
        if len(loaded.latencies) > 1
        else median
    )
    print(
        f"{name:<10} idle median {statistics.median(idle.latencies) * 1000:7.1f} ms | under load:"
        f" median {median * 1000:8.1f} ms, p90 {p90 * 1000:8.1f} ms,"
        f" max {max(loaded.latencies, default=0) * 1000:8.1f} ms, {len(loaded.latencies)} probes,"
        f" {loaded.errors} errors | {loaded.renders / seconds:5.1f} slices/s,"
        f" {loaded.refused} answered 503"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--stories", type=int, default=300)
    parser.add_argument("--baseline-ref", help="also measure this git revision, same run")
    parser.add_argument("--build", nargs=2, metavar=("DIR", "STORIES"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_site(Path(args.build[0]), int(args.build[1]))
        return
    if args.serve:
        import aggregator

        print(f"serving with {Path(aggregator.__file__).parent}", file=sys.stderr)
        serve(args.serve[0], int(args.serve[1]))
        return
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.stories} stories,"
        f" {args.clients} clients, {args.seconds:.0f} s; /healthz every {PROBE_EVERY} s"
    )
    current = report("this tree", *measure_tree(ROOT, args), args.seconds)
    if args.baseline_ref:
        with tempfile.TemporaryDirectory(prefix="healthz-baseline-") as tmp:
            baseline_tree = export_revision(args.baseline_ref, Path(tmp))
            baseline = report(
                args.baseline_ref[:10], *measure_tree(baseline_tree, args), args.seconds
            )
        print(f"median under load: this tree / {args.baseline_ref} = {current / baseline:.3f}")


if __name__ == "__main__":
    main()
