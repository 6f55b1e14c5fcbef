"""Extraction quality and cost, ours against plain trafilatura, on two sets of real pages.

Run by hand from the repository root (needs ../shared/eval, never shipped)::

    .venv/bin/python bench/extract_eval.py [--sets zyte,wcxb] [--workers 2] [--limit N]
        [--worst 10] [--feed description|none] [--feed-meta date|none|both]
        [--tokens whitespace|words] [--classes] [--dump FILE]

Sets, each with its own published metric:

* ``zyte``: the Zyte article-extraction benchmark (181 older, simpler pages). Per page,
  whitespace tokens, 4-gram shingles counted as a multiset; TP/FP/FN on shingles give the
  page's precision and recall; both are averaged over pages and F1 is taken from the two
  averages.
* ``wcxb``: WCXB dev, article pages (792 current pages; one has no gold text and is
  skipped). Word-bag F1 per page (lower case, ``\\w+`` tokens, multiset overlap), averaged
  over pages. The pages are split in two halves by a hash of their ``file_id``:
  ``tune`` (what the chain may be tuned on) and ``holdout`` (never looked at); both are
  reported, every time.

Systems, run in the same run on the same pages, interleaved page by page in worker
processes (so both see the same load on a shared machine):

* ``ours``: what the product publishes. ``extract_article`` (the function the daemon runs
  in its worker processes), then ``choose_body`` against a feed item standing for the
  page's feed entry, with the daemon's default ``min_article_chars``; scored on the
  chosen text. So a page whose extraction the chain doubts, and which the feed's text
  replaces, is scored on the feed's text: ``--feed description`` (default) gives the
  item the page's own meta description as its summary (what most feeds carry),
  ``--feed none`` gives it no text at all. ``--feed-meta`` says whether the simulated
  item carries a date (the usual case, so the page's date is not searched for), an
  author too, or neither (the extractor then searches the page for both).
* ``plain``: ``trafilatura.extract(html, include_comments=False)``, other arguments
  default (the baseline the issue measures against).

For wcxb, the shipped ``trafilatura-2.3.1-plain.json`` (plain trafilatura's output made
when the set was built) is scored too, as a sanity check on this run's ``plain``.

Printed per set: mean P, R, F1 for both systems (and per page class with ``--classes``),
the chain step each published text came from, the pages where plain scores 0.9 or
more and ours under 0.5, the time per page (median and p90, ours / plain), and the
``--worst`` pages against plain with the step and the note recorded for each. The
machine is shared and noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import logging
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import lxml.etree
import lxml.html
import trafilatura

from aggregator.config import Settings
from aggregator.extract import xpath_subset
from aggregator.extract.body import choose_body
from aggregator.extract.extractor import extract_article
from aggregator.extract.options import ExtractOptions
from aggregator.models import Entry

EVAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "eval"
ZYTE_DIR = EVAL_ROOT / "zyte-aeb"
WCXB_DIR = EVAL_ROOT / "wcxb-dev"
NGRAM = 4
SHORT_WORDS = 250  # a ground-truth body under this many words is a "short" page
LONG_WORDS = 1000
MIN_ARTICLE_CHARS = Settings().min_article_chars  # the daemon's default


@dataclass(frozen=True)
class Page:
    page_id: str
    raw: bytes
    url: str
    truth: str
    part: str  # "all", or wcxb's "tune" / "holdout"


# --- the systems, run in worker processes -------------------------------------------


@dataclass(frozen=True)
class Output:
    text: str
    seconds: float  # wall time
    cpu: float  # the worker process's CPU time: what the machine's other load does not move
    step: str = ""
    note: str = ""


class Clock:
    """Wall and CPU time of one system's work on one page."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def feed_entry(page: Page, feed: str, feed_meta: str) -> Entry:
    """The feed item standing for the page's entry: its summary and date, as asked."""
    summary = page_description(page.raw) if feed == "description" else ""
    return Entry(
        key=page.page_id, guid=None, link=page.url, canonical_url=page.url, title="",
        summary_html=summary, content_html="",
        author="Staff" if feed_meta == "both" else None,
        published=None if feed_meta == "none" else datetime(2025, 6, 1, tzinfo=UTC),
    )  # fmt: skip


def page_description(raw: bytes) -> str:
    """The page's meta description, escaped as a feed's summary would be."""
    try:
        tree = lxml.html.document_fromstring(raw)
    except (lxml.etree.ParserError, ValueError):
        return ""
    for name in ("description", "og:description", "twitter:description"):
        for meta in tree.xpath("//meta[@name=$n or @property=$n]", n=name):
            content = " ".join((meta.get("content") or "").split())
            if content:
                return f"<p>{html.escape(content)}</p>"
    return ""


def run_ours(page: Page, feed: str, feed_meta: str) -> Output:
    entry = feed_entry(page, feed, feed_meta)
    options = ExtractOptions(want_author=entry.author is None, want_date=entry.published is None)
    with Clock() as clock:
        article = extract_article(page.raw, page.url, options=options)
        body = choose_body(article, entry, min_chars=MIN_ARTICLE_CHARS)
    return Output(body.text, clock.wall, clock.cpu, body.step, body.note)


def run_plain(page: Page, feed: str, feed_meta: str) -> Output:
    html = page.raw.decode("utf-8", errors="replace")  # as the shipped plain outputs were made
    # trafilatura as shipped: lxml's expressions, not the compiled ones our extractor
    # swaps in when imported (the same elements, found faster)
    with xpath_subset.uninstalled(), Clock() as clock:
        text = trafilatura.extract(html, include_comments=False) or ""
    return Output(text, clock.wall, clock.cpu)


SYSTEMS: dict[str, Callable[[Page, str, str], Output]] = {"ours": run_ours, "plain": run_plain}


def run_one(system: str, page: Page, feed: str, feed_meta: str) -> tuple[str, str, Output]:
    logging.disable(logging.WARNING)  # trafilatura and our fallbacks log every discard
    return system, page.page_id, SYSTEMS[system](page, feed, feed_meta)


def run_all(
    pages: list[Page], workers: int, feed: str, feed_meta: str
) -> dict[str, dict[str, Output]]:
    """{system: {page_id: output}}, the systems interleaved page by page."""
    results: dict[str, dict[str, Output]] = {name: {} for name in SYSTEMS}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(run_one, name, page, feed, feed_meta) for page in pages for name in SYSTEMS
        ]
        for future in futures:
            name, page_id, output = future.result()
            results[name][page_id] = output
    return results


# --- the metrics ------------------------------------------------------------------------


_WORD = re.compile(r"\w+")
TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": str.split,  # the Zyte metric as this project reports it
    "words": _WORD.findall,  # \w+ runs, as the Zyte benchmark's own scorer tokenizes
}
tokenize = TOKENIZERS["whitespace"]


def shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = tokenize(text)
    if 0 < len(tokens) < NGRAM:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1))


def overlap_scores(expected: Counter[object], got: Counter[object]) -> tuple[float, float]:
    """Precision and recall of a multiset against the expected one (0, 0 when empty)."""
    true_positives = sum((expected & got).values())
    precision = true_positives / sum(got.values()) if got else 0.0
    recall = true_positives / sum(expected.values()) if expected else 0.0
    return precision, recall


def shingle_scores(truth: str, predicted: str) -> tuple[float, float]:
    return overlap_scores(shingles(truth), shingles(predicted))  # type: ignore[arg-type]


def word_scores(truth: str, predicted: str) -> tuple[float, float]:
    return overlap_scores(word_bag(truth), word_bag(predicted))


def word_bag(text: str) -> Counter[object]:
    return Counter(_WORD.findall(text.lower()))


def f1(pair: tuple[float, float]) -> float:
    precision, recall = pair
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True)
class Score:
    pages: int
    precision: float
    recall: float
    f1: float


def f1_of_means(pairs: list[tuple[float, float]]) -> Score:
    """The Zyte way: F1 from the mean precision and the mean recall."""
    precision = statistics.fmean(p for p, _ in pairs)
    recall = statistics.fmean(r for _, r in pairs)
    return Score(len(pairs), precision, recall, f1((precision, recall)))


def mean_of_f1s(pairs: list[tuple[float, float]]) -> Score:
    """The WCXB way: each page's F1, averaged over pages."""
    return Score(
        len(pairs),
        statistics.fmean(p for p, _ in pairs),
        statistics.fmean(r for _, r in pairs),
        statistics.fmean(f1(pair) for pair in pairs),
    )


@dataclass(frozen=True)
class EvalSet:
    name: str
    metric: str
    page_scores: Callable[[str, str], tuple[float, float]]
    aggregate: Callable[[list[tuple[float, float]]], Score]
    load: Callable[[int | None], list[Page]]


# --- loading the sets ----------------------------------------------------------------------


def load_zyte(limit: int | None) -> list[Page]:
    truth = json.loads((ZYTE_DIR / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        Page(
            page_id,
            gzip.decompress((ZYTE_DIR / "html" / f"{page_id}.html.gz").read_bytes()),
            truth[page_id]["url"],
            truth[page_id]["articleBody"],
            "all",
        )
        for page_id in sorted(truth)[:limit]
    ]


def wcxb_part(file_id: str) -> str:
    """Half the pages to tune on, half never looked at: fixed by a hash of the id."""
    return "tune" if hashlib.sha256(file_id.encode()).digest()[0] % 2 == 0 else "holdout"


def load_wcxb(limit: int | None) -> list[Page]:
    pages = []
    for path in sorted((WCXB_DIR / "ground-truth").glob("*.json"))[:limit]:
        record = json.loads(path.read_text(encoding="utf-8"))
        truth = record["ground_truth"].get("main_content")
        if truth is None:  # one page of the set has no gold text
            continue
        file_id = record["file_id"]
        raw = gzip.decompress((WCXB_DIR / "html" / f"{file_id}.html.gz").read_bytes())
        pages.append(Page(file_id, raw, record["url"], truth, wcxb_part(file_id)))
    return pages


SETS = {
    "zyte": EvalSet("zyte", "4-gram shingles, F1 of mean P and R", shingle_scores,
                    f1_of_means, load_zyte),
    "wcxb": EvalSet("wcxb", "word bag, mean of per-page F1", word_scores,
                    mean_of_f1s, load_wcxb),
}  # fmt: skip


# --- page classes ---------------------------------------------------------------------


_TABLE_ROW = re.compile(rb"<tr[\s>]", re.IGNORECASE)
_LANG = re.compile(rb"<html[^>]*\blang=[\"']?([a-zA-Z]{2})", re.IGNORECASE)


def page_classes(page: Page) -> list[str]:
    """The classes a page belongs to, from the page and its ground truth's size."""
    words = len(page.truth.split())
    classes = [f"size: short (<{SHORT_WORDS} words)"] if words < SHORT_WORDS else []
    if words > LONG_WORDS:
        classes.append(f"size: long (>{LONG_WORDS} words)")
    if len(_TABLE_ROW.findall(page.raw)) >= 3:
        classes.append("with tables (3+ rows)")
    match = _LANG.search(page.raw[:5000])
    language = match[1].decode().lower() if match else "?"
    classes.append("English" if language == "en" else "not English / unmarked")
    return classes


# --- the report ----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def row(label: str, scores: Iterable[Score]) -> str:
    scores = list(scores)
    cells = "  ".join(f"{s.precision:.4f} {s.recall:.4f} {s.f1:.4f}" for s in scores)
    return f"  {label:34} {scores[0].pages:>5}  {cells}"


def report_set(
    spec: EvalSet,
    pages: list[Page],
    results: dict[str, dict[str, Output]],
    shipped: dict[str, str] | None,
    args: argparse.Namespace,
) -> None:
    columns = {name: results[name] for name in SYSTEMS}
    texts = {name: {pid: out.text for pid, out in outs.items()} for name, outs in columns.items()}
    if shipped is not None:
        texts["shipped plain"] = {page.page_id: shipped.get(page.page_id, "") for page in pages}
    scores = {
        name: {p.page_id: spec.page_scores(p.truth, texts[name][p.page_id]) for p in pages}
        for name in texts
    }

    def line(label: str, members: list[Page]) -> str:
        return row(label, (spec.aggregate([scores[n][p.page_id] for p in members]) for n in texts))

    print(f"\n== {spec.name}: {len(pages)} pages; {spec.metric}")
    heads = "  ".join(f"{name + ' P / R / F1':>20}" for name in texts)
    print(f"  {'pages':34} {'n':>5}  {heads}")
    groups: dict[str, list[Page]] = defaultdict(list)
    for page in pages:
        groups["all"].append(page)
        if page.part != "all":
            groups[f"part: {page.part}"].append(page)
        if args.classes:
            for cls in page_classes(page):
                groups[cls].append(page)
    for label in sorted(groups, key=lambda g: (g != "all", g)):
        print(line(label, groups[label]))
    if shipped is not None:
        same = sum(texts["plain"][p.page_id] == (shipped.get(p.page_id) or "") for p in pages)
        print(f"  this run's plain output is identical to the shipped one on {same} pages")
    report_steps(pages, columns["ours"], scores)
    report_collapses(pages, columns["ours"], scores)
    report_times(columns)
    report_worst(pages, columns["ours"], scores, texts, args.worst)


def report_steps(
    pages: list[Page], ours: dict[str, Output], scores: dict[str, dict[str, tuple[float, float]]]
) -> None:
    """Per chain step: how many pages, and mean per-page F1 of ours and of plain there."""
    by_step: dict[str, list[str]] = defaultdict(list)
    for page in pages:
        by_step[ours[page.page_id].step].append(page.page_id)
    print("  step that produced the text:   pages  ours F1  plain F1  (per-page mean)")
    for step, ids in sorted(by_step.items(), key=lambda item: -len(item[1])):
        mine = statistics.fmean(f1(scores["ours"][pid]) for pid in ids)
        plain = statistics.fmean(f1(scores["plain"][pid]) for pid in ids)
        print(f"    {step:28} {len(ids):>5}  {mine:.4f}   {plain:.4f}")


def report_collapses(
    pages: list[Page], ours: dict[str, Output], scores: dict[str, dict[str, tuple[float, float]]]
) -> None:
    """The pages plain gets right (F1 >= 0.9) and ours gets wrong (F1 < 0.5)."""
    bad = [
        page.page_id
        for page in pages
        if f1(scores["plain"][page.page_id]) >= 0.9 and f1(scores["ours"][page.page_id]) < 0.5
    ]
    print(f"  plain >= 0.9 but ours < 0.5: {len(bad)} pages")
    for pid in bad:
        out = ours[pid]
        print(f"    {pid[:12]:12} ours {f1(scores['ours'][pid]):.3f} [{out.step}] {out.note[:110]}")


def report_times(columns: dict[str, dict[str, Output]]) -> None:
    """Median and p90 per page, in CPU time (the criterion: the machine is shared, and
    other load stretches wall time unevenly) and in wall time."""
    print("  time per page      CPU: median ms  p90 ms  / plain's    wall: median ms  / plain's")
    for name, outs in columns.items():
        cells = []
        for clock in ("cpu", "seconds"):
            times = [getattr(out, clock) for out in outs.values()]
            plain = statistics.median(getattr(out, clock) for out in columns["plain"].values())
            median = statistics.median(times)
            cells.append((median, percentile(times, 0.9), median / plain))
        (cpu, cpu90, cpu_ratio), (wall, _, wall_ratio) = cells
        print(
            f"    {name:16} {1000 * cpu:>13.1f} {1000 * cpu90:>7.1f} {cpu_ratio:>8.2f}x"
            f"   {1000 * wall:>14.1f} {wall_ratio:>9.2f}x"
        )


def report_worst(
    pages: list[Page],
    ours: dict[str, Output],
    scores: dict[str, dict[str, tuple[float, float]]],
    texts: dict[str, dict[str, str]],
    count: int,
) -> None:
    """The pages where ours trails plain most, with the step and the note (to read)."""
    if not count:
        return

    def gap(page: Page) -> float:
        return f1(scores["ours"][page.page_id]) - f1(scores["plain"][page.page_id])

    print(
        f"  worst {count} against plain: id part  ours P/R/F1  plain P/R/F1  words ours/plain/gold"
    )
    for page in sorted(pages, key=gap)[:count]:
        pid, out = page.page_id, ours[page.page_id]
        words = "/".join(
            str(len(text.split())) for text in (out.text, texts["plain"][pid], page.truth)
        )
        mine, plain = scores["ours"][pid], scores["plain"][pid]
        print(
            f"    {pid[:12]:12} {page.part:7} {mine[0]:.2f}/{mine[1]:.2f}/{f1(mine):.3f}  "
            f"{plain[0]:.2f}/{plain[1]:.2f}/{f1(plain):.3f}  {words:>16}  [{out.step}] "
            f"{out.note[:90]}"
        )


def dump(path: Path, per_set: dict[str, tuple[list[Page], dict[str, dict[str, Output]]]]) -> None:
    """Every page's outputs as JSON lines, to study after the run."""
    with path.open("w", encoding="utf-8") as handle:
        for name, (pages, results) in per_set.items():
            for page in pages:
                record: dict[str, object] = {"set": name, "id": page.page_id}
                record.update(part=page.part, url=page.url)
                for system, outs in results.items():
                    record[system] = asdict(outs[page.page_id])
                handle.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sets", default="zyte,wcxb", help="comma-separated: zyte, wcxb")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages of each")
    parser.add_argument("--worst", type=int, default=10, metavar="N")
    parser.add_argument("--feed", choices=("description", "none"), default="description")
    parser.add_argument("--feed-meta", choices=("date", "none", "both"), default="date")
    parser.add_argument("--tokens", choices=sorted(TOKENIZERS), default="whitespace")
    parser.add_argument("--classes", action="store_true", help="also per page class")
    parser.add_argument("--dump", type=Path, help="write every page's outputs (JSON lines)")
    args = parser.parse_args(argv)
    global tokenize
    tokenize = TOKENIZERS[args.tokens]
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    if not EVAL_ROOT.is_dir() or any(name not in SETS for name in names):
        print(f"no evaluation data at {EVAL_ROOT}, or an unknown set in {names}", file=sys.stderr)
        return 1
    print(
        f"{args.workers} worker processes; feed item: {args.feed} text, {args.feed_meta} "
        f"metadata; min_article_chars {MIN_ARTICLE_CHARS}; Zyte tokens: {args.tokens}"
    )
    per_set = {}
    for name in names:
        spec = SETS[name]
        pages = spec.load(args.limit)
        started = time.perf_counter()
        results = run_all(pages, args.workers, args.feed, args.feed_meta)
        print(f"\n{name}: {len(pages)} pages in {time.perf_counter() - started:.1f} s")
        shipped = None
        if name == "wcxb":
            shipped = json.loads((WCXB_DIR / "trafilatura-2.3.1-plain.json").read_text())
        report_set(spec, pages, results, shipped, args)
        per_set[name] = (pages, results)
    if args.dump:
        dump(args.dump, per_set)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
