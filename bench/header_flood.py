"""The daemon's memory while clients send enormous request headers (issue 19).

Not a test: run it by hand::

    .venv/bin/python bench/header_flood.py [--mb 128] [--clients 2] [--baseline-ref REF]

It starts the real daemon (``aggregator run``, no feeds) on a loopback port, then
``--clients`` connections each send one request whose header is ``--mb`` MB long, as
fast as the daemon reads it. It reports the daemon's resident memory before and its
peak during the flood (sampled every 20 ms from /proc), how much of each header the
daemon took before answering or closing, and what it answered. Then one client
sends a request head a byte a second, to show when the daemon gives up on it.

With ``--baseline-ref REF`` the same runs in the same invocation against that git
revision (``git archive`` into a temporary folder), for a before/after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


@dataclass
class Flood:
    sent: int  # bytes of the request the daemon took before it stopped reading
    answer: str  # its status line, or how the connection ended


def flood(port: int, megabytes: int) -> Flood:
    """One request with a ``megabytes`` MB header, sent as fast as it is read."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(60)
        try:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Flood: ")
            block = b"a" * CHUNK
            for _ in range(megabytes):
                conn.sendall(block)
                sent += CHUNK
            conn.sendall(b"\r\n\r\n")
        except OSError as exc:
            return Flood(sent, f"cut off ({type(exc).__name__})")
        try:
            return Flood(sent, conn.recv(200).split(b"\r\n", 1)[0].decode() or "closed")
        except OSError as exc:
            return Flood(sent, f"no answer ({type(exc).__name__})")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """The daemon and its children (extraction workers start with it)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return rss_mb(pid) + sum(rss_mb(int(kid)) for kid in kids if Path(f"/proc/{kid}").exists())


def slow_head(port: int, limit: float) -> str:
    """Send a request head a byte a second; how long until the daemon gives up."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(1)
        head = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"z" * 200
        for byte in head:
            if time.monotonic() - started > limit:
                return f"still open after {limit:.0f} s"
            try:
                conn.sendall(bytes([byte]))
                answer = conn.recv(100)
                if answer or answer == b"":
                    status = answer.split(b"\r\n", 1)[0].decode() or "closed"
                    return f"{status} after {time.monotonic() - started:.1f} s"
            except TimeoutError:
                continue
            except OSError as exc:
                return f"{type(exc).__name__} after {time.monotonic() - started:.1f} s"
    return "head sent whole"


def start_daemon(source: Path, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = directory / "feeds.yaml"
    config.write_text(f"settings:\n  database: bench.db\n  listen: 127.0.0.1:{port}\nfeeds: []\n")
    env = {**os.environ, "PYTHONPATH": str(source)}
    child = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), "run"],
        cwd=source, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            time.sleep(1)  # let it settle: workers started, first tick done
            return child, port
        time.sleep(0.1)
    child.kill()
    raise SystemExit("the daemon did not start")


def measure(source: Path, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="header-flood-") as tmp:
        child, port = start_daemon(source, Path(tmp))
        try:
            before = tree_rss_mb(child.pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    with contextlib.suppress(OSError):
                        peak[0] = max(peak[0], tree_rss_mb(child.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results: list[Flood] = []
            started = time.monotonic()
            senders = [
                threading.Thread(target=lambda: results.append(flood(port, args.mb)))
                for _ in range(args.clients)
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            elapsed = time.monotonic() - started
            time.sleep(0.5)
            done.set()
            sampler.join()
            print(
                f"  RSS {before:6.1f} MB before, peak {peak[0]:6.1f} MB"
                f" (+{peak[0] - before:.1f} MB) while {args.clients} x {args.mb} MB headers"
                f" arrived ({elapsed:.1f} s)"
            )
            for result in results:
                print(f"  taken {result.sent / CHUNK:7.1f} MB of the header, then: {result.answer}")
            print(f"  a head sent a byte a second: {slow_head(port, args.slow_limit)}")
        finally:
            child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=20)
            child.kill()


def export_revision(ref: str, directory: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "aggregator"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=128, help="size of each header")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--slow-limit", type=float, default=30, help="give up after (s)")
    parser.add_argument("--baseline-ref", help="also measure this git revision, same run")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("this tree:")
    measure(ROOT, args)
    if args.baseline_ref:
        with tempfile.TemporaryDirectory(prefix="header-flood-baseline-") as tmp:
            print(f"{args.baseline_ref}:")
            measure(export_revision(args.baseline_ref, Path(tmp)), args)


if __name__ == "__main__":
    main()
