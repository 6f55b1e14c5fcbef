"""Benchmark (issue 3): refresh 1,000 feeds served from loopback, twice.

The first pass finds content (every entry is new); the second finds every feed
unchanged and answered 304. Each pass runs in a fresh process so its peak memory
(``ru_maxrss``) is its own; a floor is measured in the same run: bare conditional GETs
of the same 1,000 URLs with httpx on the same number of threads (no parsing, no
database), which is what a 304 pass cannot go below.

The feeds are served by a separate process on ``--sites`` loopback ports (20 feeds a
site by default: the per-host limit of 1 applies as it would on the internet).
Article links are refused by the private-address guard (the default settings), so the
first pass measures fetching, parsing and storing feeds, not page extraction.

    .venv/bin/python bench/fetch_bench.py [--feeds 1000] [--items 5] [--repeat 3]

Run by hand; the machine is shared and noisy, so compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- the server


# Invented words for the bodies: each entry gets its own mix, so bodies are as unlike
# one another as real articles (templated bodies would all be near-duplicates and the
# benchmark would measure the grouping of copies instead of fetching).
_WORDS = [
    f"{a}{b}" for a in ("ar", "bel", "cor", "dun", "esk", "fal", "gor", "hal", "ist", "jor")
    for b in ("ada", "ben", "cai", "dor", "eth", "fin", "gal", "hem", "ion", "jut", "kel",
              "lor", "mar", "nes", "ost", "pra", "quo", "ris", "sal", "tor")
]  # fmt: skip


def _body(rng: random.Random, words: int = 60) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)) + "."


def feed_body(site: int, feed: int, items: int) -> bytes:
    rng = random.Random(site * 100_003 + feed)
    entries = "".join(
        f"<item><title>Site {site} feed {feed}: {_body(rng, 6)}</title>"
        f"<link>http://127.0.0.1:1/site{site}/feed{feed}/story{n}.html</link>"
        f"<guid>site{site}-feed{feed}-story{n}</guid>"
        f"<pubDate>Tue, 24 Nov 2026 {n % 24:02d}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{_body(rng)}&lt;/p&gt;&lt;p&gt;{_body(rng)}&lt;/p&gt;"
        "</description></item>"
        for n in range(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Outlet {site}-{feed}</title><link>http://127.0.0.1:1/site{site}/</link>"
        f"{entries}</channel></rss>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    bodies: dict[str, tuple[bytes, str]] = {}

    def do_GET(self) -> None:  # noqa: N802
        found = self.bodies.get(self.path)
        if found is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, etag = found
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(sites: int, per_site: int, items: int, ports: Any) -> None:
    """In its own process: one server per site, all in threads; sends the ports back."""
    bodies: dict[str, tuple[bytes, str]] = {}
    for site in range(sites):
        for feed in range(per_site):
            body = feed_body(site, feed, items)
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            bodies[f"/site{site}/feed{feed}.xml"] = (body, etag)
    _Handler.bodies = bodies
    servers = []
    for _ in range(sites):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    ports.put([server.server_address[1] for server in servers])
    threading.Event().wait()


# --------------------------------------------------------------------------- one pass


def run_pass(config_path: str) -> dict[str, Any]:
    """Refresh every feed once, in this process; report wall, CPU and peak memory."""
    from aggregator.config import load_config
    from aggregator.pipeline import PipelineContext, refresh_feeds
    from aggregator.storage import Storage

    config = load_config(config_path)
    storage = Storage.open(config.database_path)
    ctx = PipelineContext.create(config, storage, workers=0)
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = refresh_feeds(ctx, config.enabled_feeds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ctx.close()
    storage.close()
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    return {"wall": wall, "cpu": cpu, "peak_mb": _peak_mb(), "statuses": statuses}


def run_floor(urls_path: str, threads: int) -> dict[str, Any]:
    """Bare conditional GETs of every URL with httpx: the 304 pass's floor."""
    import httpx

    urls = json.loads(Path(urls_path).read_text())
    with httpx.Client() as client:
        etags = {url: client.get(url).headers["etag"] for url in urls}  # warm-up, untimed
        wall, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            codes = list(
                pool.map(lambda url: client.get(url, headers={"If-None-Match": etags[url]}), urls)
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(response.status_code == 304 for response in codes)
    return {"wall": wall, "cpu": cpu, "peak_mb": _peak_mb(), "statuses": {"304": len(codes)}}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the run


def write_config(directory: Path, ports: list[int], per_site: int) -> tuple[Path, Path]:
    urls = [
        f"http://127.0.0.1:{port}/site{site}/feed{feed}.xml"
        for site, port in enumerate(ports)
        for feed in range(per_site)
    ]
    lines = ["settings:", "  database: bench.db", "  log_level: ERROR", "feeds:"]
    lines += [f"  - url: {url}" for url in urls]
    config = directory / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n")
    urls_file = directory / "urls.json"
    urls_file.write_text(json.dumps(urls))
    return config, urls_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--per-site", type=int, default=20, help="feeds per loopback site")
    parser.add_argument("--items", type=int, default=5, help="entries per feed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pass", dest="one_pass", help=argparse.SUPPRESS)
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_pass:
        print(json.dumps(run_pass(args.one_pass)))
        return
    if args.floor:
        print(json.dumps(run_floor(args.floor, args.threads)))
        return
    bench(args)


def bench(args: argparse.Namespace) -> None:
    from aggregator.config import Settings

    sites = max(1, args.feeds // args.per_site)
    context = multiprocessing.get_context("spawn")
    ports_queue = context.Queue()
    server = context.Process(
        target=serve, args=(sites, args.per_site, args.items, ports_queue), daemon=True
    )
    server.start()
    ports: list[int] = ports_queue.get(timeout=60)
    threads = Settings().feed_concurrency
    runs: dict[str, list[dict[str, Any]]] = {"content": [], "all 304": [], "floor": []}
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="fetch-bench-") as tmp:
                config, urls = write_config(Path(tmp), ports, args.per_site)
                runs["content"].append(_child("--pass", str(config)))
                runs["all 304"].append(_child("--pass", str(config)))
                runs["floor"].append(_child("--floor", str(urls), "--threads", str(threads)))
    finally:
        server.terminate()
    report(runs, sites * args.per_site, sites, args)


def report(runs: dict[str, list[dict[str, Any]]], feeds: int, sites: int, args: Any) -> None:
    print(
        f"{feeds} feeds on {sites} loopback sites, {args.items} entries each; "
        f"median of {args.repeat} runs"
    )
    print(f"{'pass':<10} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}  outcomes")
    medians: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        medians[name] = {
            key: statistics.median(result[key] for result in results)
            for key in ("wall", "cpu", "peak_mb")
        }
        m = medians[name]
        print(
            f"{name:<10} {m['wall']:>8.2f} {m['cpu']:>8.2f} {m['peak_mb']:>8.1f}  "
            f"{results[-1]['statuses']}"
        )
    first, second, floor = medians["content"], medians["all 304"], medians["floor"]
    print(
        f"all-304 / content: wall {second['wall'] / first['wall']:.2f}, "
        f"cpu {second['cpu'] / first['cpu']:.2f}, peak {second['peak_mb'] / first['peak_mb']:.2f}"
    )
    print(
        f"all-304 / floor:   wall {second['wall'] / floor['wall']:.2f}, "
        f"cpu {second['cpu'] / floor['cpu']:.2f}"
    )


if __name__ == "__main__":
    main()
