"""Requests per second for /feed.xml with 100 full-text stories, over loopback.

Not a test: run it by hand, on an otherwise quiet machine if you can::

    .venv/bin/python bench/serve_bench.py [--seconds 5] [--rounds 3]

It builds a throwaway database of 100 invented stories (about 4 KB of text each,
two to four sources), starts the real app (``aggregator.server.create_app``) with
uvicorn in a child process, and drives it with Debian's ``wrk`` when installed
(else a small asyncio load generator, bounded in time like wrk) for:

* ``200 plain``: GET /feed.xml without Accept-Encoding (the full body),
* ``200 gzip``: GET /feed.xml with Accept-Encoding: gzip,
* ``304``: GET /feed.xml with a matching If-None-Match.

The floor of each case, measured in the same run and interleaved with it, is a bare
Starlette endpoint on the same uvicorn settings answering with the same bytes from
memory (the plain body, the gzipped body, an empty 304): the ratio says how close the
real server (query parsing, change check, validators, gzip choice) gets to "serving
bytes from memory". Medians of ``--rounds`` runs; the machine is noisy, read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STORIES = 100
SYLLABLES = "ka ro mi ten sul va de ni por gra ste lun fe ob ri cha mo zen ti bal".split()


# --- the data -----------------------------------------------------------------------


def invented_text(seed: int, words: int = 650) -> str:
    """Deterministic invented prose, ~4 KB in paragraphs, about as compressible as
    real text (gzip ~3x); made-up words, never real articles."""
    rand = random.Random(seed)
    vocabulary = [
        "".join(rand.choice(SYLLABLES) for _ in range(rand.randint(1, 4))) for _ in range(3000)
    ]
    picked = [rand.choice(vocabulary) for _ in range(words)]
    sentences = [" ".join(picked[i : i + 13]).capitalize() + "." for i in range(0, words, 13)]
    return "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))


def build_site(directory: Path) -> Path:
    """feeds.yaml plus a database holding STORIES stories; returns the config path."""
    from aggregator.config import load_config
    from aggregator.models import Assignment, NewArticle
    from aggregator.storage import Storage

    config_path = directory / "feeds.yaml"
    feeds = "".join(
        f"  - name: Outlet {n}\n    url: https://outlet{n}.test/feed\n    tags: [t{n % 3}]\n"
        for n in range(1, 5)
    )
    config_path.write_text(f"settings:\n  database: bench.db\n  feed_limit: 100\nfeeds:\n{feeds}")
    config = load_config(config_path)
    storage = Storage.open(config.database_path)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    storage.sync_feeds(config.feeds, start)
    with storage.transaction():
        for story in range(STORIES):
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


# --- the servers (child processes) ----------------------------------------------------


def serve_real(config_path: str, port: int) -> None:
    import uvicorn

    from aggregator.config import load_config
    from aggregator.serve.server import create_app

    app = create_app(load_config(config_path))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_floor(body_path: str, port: int) -> None:
    import uvicorn

    app = floor_app(Path(body_path).read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def floor_app(body: bytes) -> Any:
    """The floor: the same bytes from memory, chosen by one header, no other logic."""
    import gzip

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    zipped = gzip.compress(body, mtime=0)
    media_type = "application/rss+xml; charset=utf-8"

    async def feed(request: Request) -> Response:
        if "if-none-match" in request.headers:
            return Response(status_code=304)
        if "accept-encoding" in request.headers:
            return Response(zipped, media_type=media_type, headers={"Content-Encoding": "gzip"})
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/feed.xml", feed)])


# --- in-process: the app's own CPU per request, without sockets or the load generator ----


async def _asgi_cost(app: Any, headers: dict[str, str], requests: int) -> float:
    """Microseconds per request, calling the ASGI app directly (median of 5 batches)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/feed.xml", "raw_path": b"/feed.xml", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        batches.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(batches)


def in_process_costs(
    config_path: Path, body: bytes, cases: dict[str, dict[str, str]], requests: int = 2000
) -> dict[tuple[str, str], float]:
    """µs of CPU per request for each (server, case), both apps in this process."""
    from aggregator.config import load_config
    from aggregator.serve.server import create_app

    real = create_app(load_config(config_path))
    floor = floor_app(body)

    async def run() -> dict[tuple[str, str], float]:
        costs = {}
        async with real.router.lifespan_context(real):  # opens the database, as uvicorn does
            for case, headers in cases.items():
                costs[("floor", case)] = await _asgi_cost(floor, headers, requests)
                costs[("aggregator", case)] = await _asgi_cost(real, headers, requests)
        return costs

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(mode: str, argument: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, f"--serve-{mode}", argument, str(port)], cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return child, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    child.kill()
    raise SystemExit(f"{mode} server did not start")


def stop_server(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    child.wait(timeout=10)


# --- load generators ------------------------------------------------------------------


def run_wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    if re.search(r"Non-2xx or 3xx responses", output):
        raise SystemExit(f"wrk saw errors:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    return float(match[1])


async def _client_loop(
    host: str, port: int, request: bytes, stop_at: float, counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length[1]))
            counts[0] += 1
    finally:
        writer.close()


def run_asyncio(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    """Keep-alive GETs on ``connections`` sockets for ``seconds``; requests per second."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    lines = ["GET /feed.xml HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    counts = [0]

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        loops = [
            _client_loop(host, int(port), request, stop_at, counts) for _ in range(connections)
        ]
        await asyncio.gather(*loops)

    started = time.monotonic()
    asyncio.run(main())
    return counts[0] / (time.monotonic() - started)


# --- the benchmark --------------------------------------------------------------------


def machine_note() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, load {load[0]:.2f}/{load[1]:.2f}, "
        f"Python {platform.python_version()}, uvicorn with {http} + {loop}, "
        f"server and load generator on the same machine"
    )


def measure(
    urls: dict[str, str], cases: dict[str, dict[str, str]], args: argparse.Namespace
) -> dict[tuple[str, str], list[float]]:
    """Requests/s per (server, case), rounds interleaved so drift hits both alike."""
    generator = run_wrk if shutil.which("wrk") and not args.python_load else run_asyncio
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for case, headers in cases.items():
            for server, url in urls.items():
                rate = generator(url + "/feed.xml", headers, args.seconds, args.connections)
                results.setdefault((server, case), []).append(rate)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python-load", action="store_true", help="asyncio, even with wrk")
    args = parser.parse_args()
    import httpx

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        config_path = build_site(Path(tmp))
        real, real_url = start_server("real", str(config_path))
        floor: subprocess.Popen[bytes] | None = None
        try:
            plain = httpx.get(real_url + "/feed.xml", headers={"Accept-Encoding": "identity"})
            zipped = httpx.get(real_url + "/feed.xml", headers={"Accept-Encoding": "gzip"})
            assert plain.status_code == 200 and plain.content.count(b"<item>") == STORIES
            body_path = Path(tmp) / "feed.xml"
            body_path.write_bytes(plain.content)
            floor, floor_url = start_server("floor", str(body_path))
            cases = {
                "200 plain": {},
                "200 gzip": {"Accept-Encoding": "gzip"},
                "304 If-None-Match": {"If-None-Match": plain.headers["etag"]},
            }
            results = measure({"floor": floor_url, "aggregator": real_url}, cases, args)
        finally:
            stop_server(real)
            if floor is not None:
                stop_server(floor)
        costs = in_process_costs(config_path, plain.content, cases)
    sizes = (len(plain.content), int(zipped.headers["content-length"]))
    report(args, sizes, cases, results)
    print()
    print("In process (ASGI app called directly, no sockets): CPU per request")
    print("| case | floor µs | aggregator µs | aggregator − floor µs |")
    print("| --- | ---: | ---: | ---: |")
    for case in cases:
        floor_cost, ours = costs[("floor", case)], costs[("aggregator", case)]
        print(f"| {case} | {floor_cost:.1f} | {ours:.1f} | {ours - floor_cost:.1f} |")


def report(
    args: argparse.Namespace,
    sizes: tuple[int, int],
    cases: dict[str, dict[str, str]],
    results: dict[tuple[str, str], list[float]],
) -> None:
    tool = "wrk" if shutil.which("wrk") and not args.python_load else "asyncio generator"
    print(machine_note())
    print(
        f"/feed.xml: {STORIES} full-text stories, {sizes[0] / 1024:.0f} KB"
        f" ({sizes[1] / 1024:.0f} KB gzipped); {tool}, {args.connections} connections,"
        f" {args.rounds} x {args.seconds}s per case and server"
    )
    print("| case | floor req/s | aggregator req/s | aggregator runs | aggregator/floor |")
    print("| --- | ---: | ---: | --- | ---: |")
    for case in cases:
        floor = statistics.median(results[("floor", case)])
        ours = results[("aggregator", case)]
        runs = " ".join(f"{value:.0f}" for value in ours)
        ratio = statistics.median(ours) / floor
        print(f"| {case} | {floor:.0f} | {statistics.median(ours):.0f} | {runs} | {ratio:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-real":
        serve_real(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--serve-floor":
        serve_floor(sys.argv[2], int(sys.argv[3]))
    else:
        main()
