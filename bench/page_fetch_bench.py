"""Benchmark: article pages fetched as production fetches them, behind the guard.

``python -m bench`` serves its pages on loopback, so its refresh runs with
``allow_private_addresses`` and its pages go through the unguarded client. In
production every article page goes through the private-address guard: the host is
looked up, every address checked, and the request sent to the address checked with the
host's name as the TLS server name (aggregator/fetch/guard.py). This measures that
path over plain HTTP and over TLS, in one run:

* ``floor``: httpx alone (``httpx.Client``, its own pool, connections kept alive) over
  the same pages, addressed to 127.0.0.1 (no lookup, no guard);
* ``guarded, new connection each``: the guard over a transport that keeps no
  connection alive, what article pages did before connections were kept per
  address and name (a TCP connection, and a TLS handshake, for every page);
* ``guarded, kept alive``: ``make_client(guard=True)`` as the pipeline makes it.

Pages of about 87 KB on ``--names`` host names, fetched by 8 threads (two a name, the
per-site limit), CPU of this process (the client) per page and wall time per page,
medians of ``--repeat`` runs, each variant's CPU over the floor's. Host names are
answered by a fake resolver with 127.0.0.1, and in this process only the guard takes
127.0.0.1 for a public address: everything else of the guarded path runs as in
production. TLS needs the ``openssl`` command (a throwaway self-signed certificate,
trusted through ``SSL_CERT_FILE`` for this process).

    .venv/bin/python bench/page_fetch_bench.py [--pages 800] [--names 4] [--repeat 5]

Run by hand; the machine is shared and noisy, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAGE = b"<html><body>" + b"<p>a paragraph of the article</p>" * 2600 + b"</body></html>"
THREADS = 8


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(certificate: tuple[str, str] | None, ports: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    ports.put(server.server_address[1])
    server.serve_forever()


@contextmanager
def _server(certificate: tuple[str, str] | None) -> Iterator[int]:
    """A page server in its own process (its CPU is not the client's)."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve, args=(certificate, ports), daemon=True)
    process.start()
    try:
        yield ports.get(timeout=60)
    finally:
        process.terminate()
        process.join()


def _certificate(directory: Path, names: list[str]) -> tuple[str, str]:
    """A self-signed certificate for the names and 127.0.0.1 (the floor's address)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    alternatives = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=page-fetch-bench",
         "-addext", f"subjectAltName={alternatives}",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def _timed(client: Any, urls: list[str], fetch: Callable[[Any, str], bytes]) -> tuple[float, float]:
    """CPU and wall seconds per page of fetching every URL on THREADS threads."""
    fetch(client, urls[0])  # connections and imports warm for every variant alike
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        sizes = list(pool.map(lambda url: len(fetch(client, url)), urls))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert all(size == len(PAGE) for size in sizes)
    return cpu / len(urls), wall / len(urls)


# What one variant is: how to make its client, which URLs it fetches, and how.
Variant = tuple[Callable[[], Any], list[str], Callable[[Any, str], bytes]]


def _variants(floor_urls: list[str], urls: list[str]) -> dict[str, Variant]:
    """The floor (httpx alone, by address) and the guarded path (by name), before and
    after connections were kept alive."""
    import httpx

    from aggregator.config import Settings
    from aggregator.fetch import make_client
    from aggregator.fetch.transport import DeadlineTransport

    settings = Settings()  # the defaults: pages behind the guard

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    return {
        "floor": (
            lambda: httpx.Client(verify=ssl.create_default_context()),
            floor_urls,
            _fetch_plain,
        ),
        "guarded, new connection each": (
            lambda: make_client(
                settings,
                guard=True,
                resolve=resolve,
                transport=DeadlineTransport(httpx.Limits(max_keepalive_connections=0)),
            ),
            urls,
            _fetch_page,
        ),
        "guarded, kept alive": (
            lambda: make_client(settings, guard=True, resolve=resolve),
            urls,
            _fetch_page,
        ),
    }


def _fetch_page(client: Any, url: str) -> bytes:
    from aggregator.fetch import fetch_page

    return fetch_page(client, url, max_bytes=10_000_000).content


def _fetch_plain(client: Any, url: str) -> bytes:
    response = client.get(url)
    response.raise_for_status()
    content: bytes = response.content
    return content


def _loopback_counts_as_public() -> None:
    """In this process only: the guard takes 127.0.0.1 for a public address, so the
    guarded path runs whole against the loopback server."""
    from aggregator.fetch import guard

    checked = guard._blocked_reason
    guard._blocked_reason = lambda address: "" if address.is_loopback else checked(address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=800)
    parser.add_argument("--names", type=int, default=4, help="host names (sites) served")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--schemes", default="http,https")
    args = parser.parse_args(argv)
    names = [f"site{number}.bench.test" for number in range(args.names)]
    _loopback_counts_as_public()
    with tempfile.TemporaryDirectory(prefix="page-fetch-bench-") as directory:
        certificate = _certificate(Path(directory), names)
        os.environ["SSL_CERT_FILE"] = certificate[0]  # trusted by this process's clients
        print(f"{args.pages} pages of {len(PAGE) // 1000} KB on {args.names} names, "
              f"{THREADS} threads; medians of {args.repeat} runs; client CPU per page")  # fmt: skip
        print(f"{'scheme':6s} {'variant':30s} {'cpu ms':>8s} {'wall ms':>8s} {'cpu/floor':>9s}")
        for scheme in args.schemes.split(","):
            with _server(certificate if scheme == "https" else None) as port:
                floor_urls = [f"{scheme}://127.0.0.1:{port}/a{n}" for n in range(args.pages)]
                urls = [
                    f"{scheme}://{names[n % len(names)]}:{port}/a{n}" for n in range(args.pages)
                ]
                runs: dict[str, list[tuple[float, float]]] = {}
                variants = _variants(floor_urls, urls)
                for _ in range(args.repeat):  # the variants alternate: the same load
                    for name, (make, fetched, fetch) in variants.items():
                        with make() as client:
                            runs.setdefault(name, []).append(_timed(client, fetched, fetch))
                floor_cpu = statistics.median(cpu for cpu, _ in runs["floor"])
                for name, measured in runs.items():
                    cpu = statistics.median(cpu for cpu, _ in measured)
                    wall = statistics.median(wall for _, wall in measured)
                    print(f"{scheme:6s} {name:30s} {cpu * 1000:8.3f} {wall * 1000:8.3f} "
                          f"{cpu / floor_cpu:9.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
