"""Extraction quality on the Zyte article-extraction benchmark, ours against trafilatura.

Run by hand from the repository root (needs ../shared/eval, never shipped)::

    .venv/bin/python bench/extract_eval.py [--workers 2] [--limit N] [--show-worst 5]
                                           [--tokens whitespace|words]

For each of the 181 pages it runs, in the same run and on the same bytes:

* ``ours``: ``aggregator.extractor.extract_article`` (the function the daemon runs in
  its worker processes), scored on ``Article.text``, the plain text we publish;
* ``trafilatura``: plain ``trafilatura.extract(page)`` with its defaults.

Metric (as published for this benchmark): per page, whitespace tokens, 4-gram shingles
counted as a multiset; TP/FP/FN on shingles give the page's precision and recall;
precision and recall are averaged over pages and F1 is taken from the two averages.
An empty prediction scores precision 0 and recall 0 on that page.

It also reports the figures per page class (short, long, pages with tables, non-English
pages, ...) and the median and p90 extraction time per page. Times are measured inside
the worker processes (both cores busy), next to a floor measured in the same run: one
lxml parse of the same page. The machine is shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lxml.html
import trafilatura

from aggregator.extract.extractor import extract_article

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval" / "zyte-aeb"
NGRAM = 4
SHORT_WORDS = 250  # a ground-truth body under this many words is a "short" page
LONG_WORDS = 1000


# --- the systems, run in worker processes -------------------------------------------


def run_ours(page: bytes, url: str) -> str:
    article = extract_article(page, url)
    return article.text if article is not None else ""


def run_trafilatura(page: bytes, url: str) -> str:
    return trafilatura.extract(page) or ""


def run_floor(page: bytes, url: str) -> str:
    lxml.html.document_fromstring(page)
    return ""


SYSTEMS: dict[str, Callable[[bytes, str], str]] = {
    "ours": run_ours,
    "trafilatura": run_trafilatura,
    "lxml parse (floor)": run_floor,
}


def timed(system: str, page_id: str, page: bytes, url: str) -> tuple[str, str, str, float]:
    logging.disable(logging.WARNING)  # trafilatura and our fallbacks log every discard
    started = time.perf_counter()
    text = SYSTEMS[system](page, url)
    return system, page_id, text, time.perf_counter() - started


# --- scoring --------------------------------------------------------------------------


_WORD = re.compile(r"\w+")
TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": str.split,  # the metric this project reports
    "words": _WORD.findall,  # \w+ runs, as the benchmark's own scorer tokenizes
}
tokenize = TOKENIZERS["whitespace"]


def shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = tokenize(text)
    if 0 < len(tokens) < NGRAM:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1))


def page_scores(truth: str, predicted: str) -> tuple[float, float]:
    """Precision and recall of one page's prediction."""
    expected, got = shingles(truth), shingles(predicted)
    true_positives = sum((expected & got).values())
    precision = true_positives / sum(got.values()) if got else 0.0
    recall = true_positives / sum(expected.values()) if expected else 0.0
    return precision, recall


@dataclass(frozen=True)
class Score:
    pages: int
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def aggregate(pairs: Iterable[tuple[float, float]]) -> Score:
    pairs = list(pairs)
    if not pairs:
        return Score(0, 0.0, 0.0)
    return Score(
        len(pairs),
        statistics.fmean(p for p, _ in pairs),
        statistics.fmean(r for _, r in pairs),
    )


# --- page classes ---------------------------------------------------------------------


_TABLE_ROW = re.compile(rb"<tr[\s>]", re.IGNORECASE)
_LANG = re.compile(rb"<html[^>]*\blang=[\"']?([a-zA-Z]{2})", re.IGNORECASE)


def page_classes(page: bytes, truth: str) -> list[str]:
    """The classes a page belongs to, from the page and its ground truth's size."""
    words = len(truth.split())
    classes = ["all"]
    if words < SHORT_WORDS:
        classes.append(f"short (<{SHORT_WORDS} words)")
    elif words > LONG_WORDS:
        classes.append(f"long (>{LONG_WORDS} words)")
    else:
        classes.append("medium")
    if len(_TABLE_ROW.findall(page)) >= 3:
        classes.append("with tables (3+ rows)")
    match = _LANG.search(page[:5000])
    language = match[1].decode().lower() if match else "?"
    classes.append("English" if language == "en" else "not English / unmarked")
    return classes


# --- the run --------------------------------------------------------------------------


def load_pages(limit: int | None) -> dict[str, tuple[bytes, str, str]]:
    truth = json.loads((EVAL_DIR / "ground-truth.json").read_text(encoding="utf-8"))
    pages: dict[str, tuple[bytes, str, str]] = {}
    for page_id in sorted(truth)[:limit]:
        raw = gzip.decompress((EVAL_DIR / "html" / f"{page_id}.html.gz").read_bytes())
        pages[page_id] = (raw, truth[page_id]["url"], truth[page_id]["articleBody"])
    return pages


def run_all(
    pages: dict[str, tuple[bytes, str, str]], systems: list[str], workers: int
) -> dict[str, dict[str, tuple[str, float]]]:
    """{system: {page_id: (text, seconds)}}, the systems interleaved page by page."""
    results: dict[str, dict[str, tuple[str, float]]] = {name: {} for name in systems}
    jobs = [(name, page_id) for page_id in pages for name in systems]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(timed, name, page_id, pages[page_id][0], pages[page_id][1])
            for name, page_id in jobs
        ]
        for future in futures:
            name, page_id, text, seconds = future.result()
            results[name][page_id] = (text, seconds)
    return results


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(
    pages: dict[str, tuple[bytes, str, str]],
    results: dict[str, dict[str, tuple[str, float]]],
    scored: list[str],
    show_worst: int,
) -> None:
    classes = {page_id: page_classes(raw, truth) for page_id, (raw, _, truth) in pages.items()}
    scores = {
        name: {pid: page_scores(pages[pid][2], results[name][pid][0]) for pid in pages}
        for name in scored
    }
    names = sorted({c for cs in classes.values() for c in cs}, key=lambda c: (c != "all", c))
    print(f"\n{'class':28} {'pages':>5}  " + "  ".join(f"{n:>26}" for n in scored))
    print(f"{'':28} {'':>5}  " + "  ".join(f"{'P      R      F1':>26}" for _ in scored))
    for cls in names:
        members = [pid for pid in pages if cls in classes[pid]]
        cells = []
        for name in scored:
            score = aggregate(scores[name][pid] for pid in members)
            cells.append(f"{score.precision:.4f} {score.recall:.4f} {score.f1:.4f}")
        print(f"{cls:28} {len(members):>5}  " + "  ".join(f"{c:>26}" for c in cells))
    floor = [seconds for _, seconds in results["lxml parse (floor)"].values()]
    print(f"\n{'time per page':28} {'median ms':>10} {'p90 ms':>8} {'median/floor':>13}")
    for name, per_page in results.items():
        times = [seconds for _, seconds in per_page.values()]
        ratio = statistics.median(times) / statistics.median(floor)
        print(
            f"{name:28} {1000 * statistics.median(times):>10.1f} "
            f"{1000 * percentile(times, 0.9):>8.1f} {ratio:>12.1f}x"
        )
    if show_worst and len(scored) > 1:
        print_worst(pages, scores, scored, show_worst)


def print_worst(
    pages: dict[str, tuple[bytes, str, str]],
    scores: dict[str, dict[str, tuple[float, float]]],
    scored: list[str],
    count: int,
) -> None:
    """The pages where ours trails the other system most (to read, not to tune on)."""
    ours, other = scored[0], scored[1]

    def f1(pair: tuple[float, float]) -> float:
        return 2 * pair[0] * pair[1] / (pair[0] + pair[1]) if sum(pair) else 0.0

    gaps = sorted(pages, key=lambda pid: f1(scores[ours][pid]) - f1(scores[other][pid]))
    print(f"\nlargest gaps, {ours} vs {other} (P, R):")
    for pid in gaps[:count]:
        print(f"  {pid[:12]} {ours} {scores[ours][pid]} {other} {scores[other][pid]}")
    print("lowest F1 pages for", ours)
    for pid in sorted(pages, key=lambda pid: f1(scores[ours][pid]))[:count]:
        print(f"  {pid[:12]} P={scores[ours][pid][0]:.3f} R={scores[ours][pid][1]:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--show-worst", type=int, default=0, metavar="N")
    parser.add_argument(
        "--tokens", choices=sorted(TOKENIZERS), default="whitespace", help="how text is split"
    )
    args = parser.parse_args(argv)
    global tokenize
    tokenize = TOKENIZERS[args.tokens]
    if not EVAL_DIR.is_dir():
        print(f"no evaluation data at {EVAL_DIR}", file=sys.stderr)
        return 1
    pages = load_pages(args.limit)
    systems = list(SYSTEMS)
    started = time.perf_counter()
    results = run_all(pages, systems, args.workers)
    elapsed = time.perf_counter() - started
    print(
        f"{len(pages)} pages, {args.workers} worker processes, {elapsed:.1f} s in all; "
        f"{args.tokens} tokens, {NGRAM}-gram shingles"
    )
    report(pages, results, ["ours", "trafilatura"], args.show_worst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
