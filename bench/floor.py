"""The floor of ``python -m bench`` (issue 8): the two libraries alone, on every core.

``python -m bench.floor DIR [--processes N]`` runs feedparser on every ``*.xml`` and
``trafilatura.extract`` (its defaults) on every other file of DIR, spread over N
worker processes that imported both libraries before the clock started, and prints
one JSON line: the pool's wall time, the bodies done and the workers' CPU. No
database, no HTTP, no grouping: what the refresh cannot go below on these bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _floor_one(path: str) -> tuple[str, float]:
    """feedparser or trafilatura, alone, on one stored body: (library, CPU seconds)."""
    import feedparser  # imported by _warm already: a dictionary lookup here
    import trafilatura

    data = Path(path).read_bytes()
    started = time.process_time()
    if path.endswith(".xml"):
        feedparser.parse(io.BytesIO(data))
        library = "feedparser"
    else:
        trafilatura.extract(data.decode("utf-8"), url=path)
        library = "trafilatura"
    return library, time.process_time() - started


def _warm() -> None:
    import feedparser  # noqa: F401 (loaded before the clock starts)
    import trafilatura

    trafilatura.extract("<html><body><p>warm up</p></body></html>")


def run_floor(directory: str, processes: int) -> dict[str, Any]:
    """In a child process: every body of ``directory`` through the libraries alone."""
    paths = sorted(str(p) for p in Path(directory).rglob("*") if p.is_file())
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_warm) as pool:
        list(pool.map(time.sleep, [0.2] * processes))  # every worker started and warm
        wall = time.perf_counter()
        done = list(pool.map(_floor_one, paths, chunksize=4))
        wall = time.perf_counter() - wall
    cpu = {"feedparser": 0.0, "trafilatura": 0.0}
    for library, seconds in done:
        cpu[library] += seconds
    # "cpu": the libraries' own CPU, without interpreter start-up and imports
    return {"wall": wall, "bodies": len(done), "cpu": sum(cpu.values()), "by_library": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(json.dumps(run_floor(args.directory, args.processes)))


if __name__ == "__main__":
    main()
