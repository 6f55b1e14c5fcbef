"""The benchmark suite (issue 8): ``python -m bench`` (or ``make bench``).

Builds an invented corpus (bench/corpus.py: N feeds x M items, messy 60-100 KB
article pages, wire copies and related reports) and serves it on loopback ports from
a separate process. Then, per repeat, in a fresh database:

* ``first``: the real ``aggregator refresh`` as a separate process (every entry new);
* ``all 304``: the same command again (every feed answers 304);
* ``5% new``: again after 5% of the feeds gained one new item;
* ``floor``: feedparser and trafilatura alone over exactly the bytes of the first
  refresh (every feed body, every article page once), one process per core; run
  before the refreshes and again after them, and the mean of the two is the floor
  (on a shared machine the load drifts within a run: a floor taken only after the
  refreshes met another load than the first refresh did, by up to a quarter).

For each: wall time, CPU time (user+sys of the process and its workers), peak RSS of
the whole process tree (sampled), articles, articles/s; the headline is first/floor.

``--grown N`` (growth): each repeat also runs ``first``, ``all 304`` and ``5% new`` on a
copy of a database that already holds N articles (synthetic news, bench/cluster_eval.py,
all inside the clustering window), built once before the repeats; the report compares
the two, so it shows whether a refresh costs more as the database grows.
``--ablate grouping``: the refreshes run without the grouping (bench/timed_refresh.py),
so that the difference from a run without it is what the grouping costs.
The loopback server's own CPU is printed too: on a 2-core machine it competes with the
refresh (the floor reads the bytes from disk instead).

    .venv/bin/python -m bench [--size small|medium|large] [--repeat 3] [--profile FILE]
                              [--grown 100000] [--also serve,cluster,fetch,pages,xpath]
                              [--ablate grouping]

Other parts of issue 8 have their own scripts: bench/fetch_bench.py (1,000 feeds,
all-304), bench/cluster_eval.py (clustering), bench/serve_bench.py (/feed.xml req/s),
bench/page_fetch_bench.py (article pages as production fetches them: behind the
private-address guard, which the refreshes here run without, their pages being on
loopback).
Run by hand: the machine is shared and noisy, so compare ratios from one run.
Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.corpus import Corpus, build_corpus, resolve, serve_corpus
from bench.timed_refresh import ABLATIONS
from bench.timed_refresh import PREFIX as TIMINGS_PREFIX

SIZES = {"small": (20, 20), "medium": (200, 20), "large": (2000, 10)}
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HERE = Path(__file__).parent
# The other parts of issue 8, each its own script (see their docstrings).
OTHER_BENCHES = {
    "xpath": ["-m", "bench.xpath_bench", "--pages", "200", "--repeat", "3"],
    "serve": [str(HERE / "serve_bench.py"), "--seconds", "3", "--rounds", "3"],
    "cluster": [
        "-m",
        "bench.cluster_eval",
        "--no-quality",
        "--no-baseline",
        "--scale",
        "1000,10000",
    ],
    "fetch": [str(HERE / "fetch_bench.py"), "--repeat", "1"],
    # article pages behind the private-address guard, as production fetches them
    "pages": [str(HERE / "page_fetch_bench.py"), "--repeat", "3"],
}

# --------------------------------------------------------------------------- measuring


def _children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        todo += _children_of(current)
    return total * PAGE_SIZE / 1e6


def _cpu_seconds(pid: int) -> float:
    """User+system CPU of a running process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command``; wall, CPU (with waited-for workers), peak tree RSS, stdout.

    The peak is the largest sum of the RSS of the process and its descendants, sampled
    every 50 ms (a worker's shared pages count once per process, as ``ps`` counts).
    """
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    peak, main_cpu, done = 0.0, 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak, main_cpu
        while not done.is_set():
            peak = max(peak, _tree_rss_mb(process.pid))
            try:  # the main process alone (its workers are in ``usage`` below)
                main_cpu = _cpu_seconds(process.pid)
            except (OSError, IndexError, ValueError):
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    out.seek(0)
    text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{text}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        # sampled, not ru_maxrss: a forked child starts with its parent's high-water mark
        "peak_mb": peak,
        "main_cpu": main_cpu,  # last sample, at most 50 ms before the end
        "output": text,
    }


# --------------------------------------------------------------------------- the floor


def write_floor_bytes(corpus: Corpus, ports: list[int], directory: Path) -> int:
    """The bytes the first refresh gets: every feed body and every article page once."""
    for n, path in enumerate([*corpus.feed_paths, *corpus.article_paths]):
        target = directory / f"{n:06d}{Path(path).suffix}"
        target.write_bytes(resolve(corpus.bodies[path], ports))
    return len(corpus.feed_paths) + len(corpus.article_paths)


# --------------------------------------------------------------------------- one repeat


def write_config(directory: Path, corpus: Corpus, ports: list[int], per_site: int) -> Path:
    lines = [
        "settings:",
        "  database: bench.db",
        "  log_level: WARNING",
        "  allow_private_addresses: true  # the corpus is on 127.0.0.1",
        "feeds:",
    ]
    for feed, path in enumerate(corpus.feed_paths):
        lines.append(f"  - url: http://127.0.0.1:{ports[feed // per_site]}{path}")
    config = directory / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def refresh(config: Path, profile: str | None = None) -> dict[str, Any]:
    """The real ``aggregator refresh`` (through bench/timed_refresh.py, which times the
    main thread's storing of each feed and the refinement)."""
    command = [sys.executable, "-m", "bench.timed_refresh", "--config", str(config), "refresh"]
    if profile:
        command[1:1] = ["-m", "cProfile", "-o", profile]
    result = measure(command)
    found = re.search(r"(\d+) new articles", result["output"])
    result["articles"] = int(found.group(1)) if found else 0
    result.update(_timings(result["output"]))
    return result


def _timings(output: str) -> dict[str, float]:
    """The main thread's CPU per new article from bench/timed_refresh.py's line: the
    median over feeds of (CPU storing the feed) / (its new articles), in ms; the writes
    of what waits (counts, search index) over all the new articles, in ms; and the
    refinement's CPU in seconds."""
    lines = [line for line in output.splitlines() if line.startswith(TIMINGS_PREFIX)]
    if not lines:
        return {}
    timings = json.loads(lines[-1][len(TIMINGS_PREFIX) :])
    per_article = [seconds / count for count, seconds in timings["store"] if count]
    articles = sum(count for count, _ in timings["store"])
    return {
        "store_ms": 1000 * statistics.median(per_article) if per_article else 0.0,
        "write_ms": 1000 * sum(timings.get("write", [])) / articles if articles else 0.0,
        "refine_cpu": sum(timings["refine"]),
    }


def build_grown_database(path: Path, articles: int) -> dict[str, Any]:
    """A database holding ``articles`` synthetic articles, placed by the real clustering,
    timestamped over the last day so that all of them are in the clustering window."""
    from aggregator.config import Settings
    from aggregator.pipeline.stories import add_article_to_story
    from bench.cluster_eval import SyntheticNews, make_article, open_storage

    started = time.perf_counter()
    news, settings = SyntheticNews(), Settings()
    first = datetime.now(UTC) - timedelta(hours=30) - timedelta(seconds=articles)
    storage = open_storage(str(path.parent))
    for start in range(0, articles, 500):
        with storage.transaction():
            for n in range(start, min(start + 500, articles)):
                title, text = news.article()
                moment = first + timedelta(seconds=n)
                article = make_article(storage, f"g{n}", title, text, moment)
                add_article_to_story(storage, article, settings, new_story_id=f"g{n}")
        storage.flush_frequencies()  # as the pipeline: once per refresh
        if start and start % 20_000 == 0:
            print(f"  grown database: {start} articles", flush=True)
    storage.close()
    (path.parent / "bench.db").rename(path)
    seconds = time.perf_counter() - started
    print(f"  grown database: {articles} articles in {seconds:.0f} s", flush=True)
    return {"articles": articles, "db_mb": path.stat().st_size / 1e6}


def one_repeat(
    corpus: Corpus,
    ports: list[int],
    args: argparse.Namespace,
    server: Any,
    generation: Any,
    seed_database: Path | None = None,
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        config = write_config(Path(tmp), corpus, ports, args.per_site)
        floors: list[dict[str, Any]] = []
        if seed_database is not None:
            shutil.copyfile(seed_database, Path(tmp) / "bench.db")
            prefix = "grown "
        else:
            prefix = ""
            floor_dir = Path(tmp) / "floor"
            floor_dir.mkdir()
            bodies = write_floor_bytes(corpus, ports, floor_dir)
            floors.append(measure_floor(floor_dir, bodies, args))
        for name in ("first", "all 304", "5% new"):
            generation.value = 1 if name == "5% new" else 0
            before = _cpu_seconds(server.pid)
            profile = args.profile if name == "first" and seed_database is None else None
            rows[prefix + name] = refresh(config, profile)
            rows[prefix + name]["server_cpu"] = _cpu_seconds(server.pid) - before
        generation.value = 0
        rows[prefix + "first"]["db_mb"] = (Path(tmp) / "bench.db").stat().st_size / 1e6
        if seed_database is not None:
            return rows
        floors.append(measure_floor(floor_dir, bodies, args))
        before, after = floors
        rows["floor"] = {
            **after,
            "wall": (before["wall"] + after["wall"]) / 2,
            "cpu": (before["cpu"] + after["cpu"]) / 2,
            "walls": (before["wall"], after["wall"]),
            "articles": len(corpus.article_paths),
        }
    return rows


def measure_floor(floor_dir: Path, bodies: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run of bench/floor.py over the stored bytes: the libraries' own time (the
    pool's wall and CPU, not the interpreters' start-up)."""
    command = [sys.executable, "-m", "bench.floor", str(floor_dir)]
    floor = measure([*command, "--processes", str(args.processes)])
    inner = json.loads(floor["output"].strip().splitlines()[-1])
    assert inner["bodies"] == bodies, inner
    return {**floor, "wall": inner["wall"], "cpu": inner["cpu"], "by_library": inner["by_library"]}


# --------------------------------------------------------------------------- the report


def _median(runs: list[dict[str, dict[str, Any]]], name: str, key: str) -> float:
    return float(statistics.median(run[name].get(key, 0.0) for run in runs))


def report(
    runs: list[dict[str, dict[str, Any]]],
    corpus: Corpus,
    args: argparse.Namespace,
    grown: dict[str, Any] | None = None,
) -> None:
    pages = len(corpus.article_paths)
    print(
        f"\n{args.size if (args.feeds, args.items) == (None, None) else 'custom'}:"
        f" {corpus.feeds} feeds x {corpus.items} items = {pages} article pages"
        f" on {corpus.sites} loopback sites; {len(corpus.changed)} feeds change for '5% new';"
        f" floor on {args.processes} processes; median of {len(runs)} run(s)"
    )
    header = (
        f"{'pass':<14} {'wall s':>8} {'cpu s':>8} {'main cpu':>8} {'peak MB':>8} {'articles':>8}"
        f" {'art/s':>7} {'srv cpu':>7} {'/floor':>7} {'main ms/art':>11} {'store ms/art':>12}"
        f" {'write ms/art':>12} {'refine s':>8}"
    )
    print(header)
    print("-" * len(header))
    floor_wall = _median(runs, "floor", "wall")
    names = ["floor", "first", "all 304", "5% new"]
    if grown is not None:
        names += ["grown first", "grown all 304", "grown 5% new"]
    for name in names:
        wall, cpu = _median(runs, name, "wall"), _median(runs, name, "cpu")
        main_cpu = _median(runs, name, "main_cpu")
        articles = runs[-1][name]["articles"]
        per_article = (
            f" {1000 * main_cpu / articles:>11.2f} {_median(runs, name, 'store_ms'):>12.2f}"
            f" {_median(runs, name, 'write_ms'):>12.2f} {_median(runs, name, 'refine_cpu'):>8.2f}"
            if name != "floor" and articles
            else ""
        )
        print(
            f"{name:<14} {wall:>8.2f} {cpu:>8.2f} {main_cpu:>8.2f}"
            f" {_median(runs, name, 'peak_mb'):>8.0f} {articles:>8} {articles / wall:>7.1f}"
            f" {_median(runs, name, 'server_cpu'):>7.2f} {wall / floor_wall:>7.2f}{per_article}"
        )
    ratios = [run["first"]["wall"] / run["floor"]["wall"] for run in runs]
    cpu_ratio = _median(runs, "first", "cpu") / _median(runs, "floor", "cpu")
    print(
        f"headline: first refresh / floor = {_median(runs, 'first', 'wall') / floor_wall:.2f}"
        f" wall (per run: {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.2),"
        f" {cpu_ratio:.2f} CPU"
    )
    print(
        "main ms/art: the refresh's main process CPU (downloads, feed parsing, storing,"
        " the refinement) over its new articles; store ms/art: the main thread's CPU"
        " storing each feed (stored, grouped, indexed) per new article, median over feeds"
        " (target < 3); write ms/art: writing what waits (the document frequencies"
        " counted in memory, the search index's queue) over all new articles (a mean:"
        " add it to the store figure for the whole storing); refine s: the refinement's CPU"
    )
    if args.ablate:
        print(
            f"ablation: the refreshes ran without {args.ablate} (--ablate): what it costs is"
            " the difference from a run without --ablate; these are not the product's figures"
        )
    walls = "; ".join("{:.1f} / {:.1f}".format(*run["floor"]["walls"]) for run in runs)
    print(f"floor: the mean of a run before the refreshes and one after (wall s: {walls})")
    libraries = runs[-1]["floor"]["by_library"]
    print(
        f"floor CPU by library: feedparser {libraries['feedparser']:.2f} s,"
        f" trafilatura {libraries['trafilatura']:.2f} s;"
        f" database after the first refresh: {runs[-1]['first']['db_mb']:.1f} MB"
    )
    if grown is not None:
        grown_wall, empty = _median(runs, "grown first", "wall"), _median(runs, "first", "wall")
        print(
            f"growth: on a database already holding {grown['articles']} articles"
            f" ({grown['db_mb']:.0f} MB) the first refresh takes {grown_wall:.2f} s"
            f" against {empty:.2f} s on an empty one ({grown_wall / empty:.2f}x);"
            f" peak RSS {_median(runs, 'grown first', 'peak_mb'):.0f} MB;"
            f" database after it {runs[-1]['grown first']['db_mb']:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--feeds", type=int, help="override the size's number of feeds")
    parser.add_argument("--items", type=int, help="override the size's items per feed")
    parser.add_argument("--per-site", type=int, default=5, help="feeds per loopback site")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="processes of the floor"
    )
    parser.add_argument("--profile", help="write a cProfile of the first refresh here")
    parser.add_argument(
        "--ablate",
        choices=ABLATIONS,
        help="refresh without this part of the pipeline, to measure what it costs"
        " (grouping: every article a story of its own, no refinement; a measurement,"
        " never the product: bench/timed_refresh.py)",
    )
    parser.add_argument(
        "--grown",
        type=int,
        default=0,
        metavar="N",
        help="also refresh into a database already holding N articles (growth)",
    )
    parser.add_argument(
        "--also",
        default="",
        help="comma-separated: serve (bench/serve_bench.py), cluster (bench/cluster_eval.py"
        " scale only), fetch (bench/fetch_bench.py), pages (bench/page_fetch_bench.py:"
        " article pages behind the guard, which the refreshes here do not use), xpath"
        " (bench/xpath_bench.py: trafilatura's expressions, lxml's against compiled ones);"
        " run after"
        " the table",
    )
    args = parser.parse_args()
    if args.ablate:  # read by bench/timed_refresh.py in each refresh's process
        os.environ["BENCH_ABLATE"] = args.ablate
    feeds, items = SIZES[args.size]
    corpus = build_corpus(args.feeds or feeds, args.items or items, feeds_per_site=args.per_site)
    context = multiprocessing.get_context("spawn")
    ports_queue, generation = context.Queue(), context.Value("i", 0)
    server = context.Process(
        target=serve_corpus, args=(corpus, ports_queue, generation), daemon=True
    )
    server.start()
    grown_dir = tempfile.TemporaryDirectory(prefix="bench-grown-")
    try:
        # the corpus is pickled over to the server process: ~1 GB for the large size
        ports: list[int] = ports_queue.get(timeout=900)
        seed = Path(grown_dir.name) / "grown.db" if args.grown else None
        grown = build_grown_database(seed, args.grown) if seed is not None else None
        runs = []
        for n in range(args.repeat):
            runs.append(one_repeat(corpus, ports, args, server, generation))
            if seed is not None:
                runs[-1].update(one_repeat(corpus, ports, args, server, generation, seed))
            print(f"run {n + 1}/{args.repeat}: first {runs[-1]['first']['wall']:.1f} s", flush=True)
    finally:
        server.terminate()
        grown_dir.cleanup()
    report(runs, corpus, args, grown)
    for name in filter(None, args.also.split(",")):
        print(f"\n{name}: {' '.join(OTHER_BENCHES[name])}", flush=True)
        subprocess.run([sys.executable, *OTHER_BENCHES[name]], check=True, cwd=HERE.parent)


if __name__ == "__main__":
    main()
