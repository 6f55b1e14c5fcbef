"""Benchmark: trafilatura's pruning and content-finding expressions, lxml's XPath against
the compiled ones.

``aggregator/extract/xpath_subset.py`` swaps trafilatura's XPath expressions for Python
predicates that select the same elements. This times each expression both ways over
the bench corpus's article pages, on the two trees trafilatura runs them on: the page
as loaded, and the page after its cleaning and tag conversion (in an extraction each
runs on one of them, on what earlier steps left). Medians of ``--repeat`` passes,
milliseconds a page (one page = both trees); the compiled ones remember their answers
per attribute value, warm after the first pass. Every result is also compared, element
for element, and a difference stops the run.

    .venv/bin/python -m bench.xpath_bench [--pages 400] [--repeat 5]

Run by hand; the machine is shared and noisy, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from copy import deepcopy
from typing import Any

from lxml.etree import XPath
from trafilatura import xpaths
from trafilatura.htmlprocessing import convert_tags, tree_cleaning
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from aggregator.extract.xpath_subset import TRAFILATURA_LISTS, CompiledXPath, compiled
from bench.corpus import build_corpus, resolve

REGEXP = {"re": "http://exslt.org/regular-expressions"}


def page_trees(pages: int) -> list[Any]:
    corpus = build_corpus(20, 20)
    trees = []
    options = Extractor()
    for path in corpus.article_paths[:pages]:
        raw = load_html(resolve(corpus.bodies[path], list(range(8000, 8010))))
        if raw is None:
            continue
        trees.append(raw)
        trees.append(convert_tags(tree_cleaning(deepcopy(raw), options), options, ""))
    return trees


def expressions() -> list[tuple[str, Any, Any]]:
    """(name, lxml's XPath, the compiled one) for every pruning expression."""
    found = []
    for list_name in TRAFILATURA_LISTS:
        for index, expression in enumerate(getattr(xpaths, list_name, [])):
            source = expression.path  # swapped already or not, both carry the source
            original = XPath(source, namespaces=REGEXP) if "re:" in source else XPath(source)
            found.append((f"{list_name}[{index}]", original, compiled(original)))
    return found


def timed(expression: Any, trees: list[Any]) -> float:
    start = time.perf_counter()
    for tree in trees:
        expression(tree)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    trees = page_trees(args.pages)
    pages = len(trees) // 2
    print(f"{pages} pages, {args.repeat} passes; ms a page (the loaded and the cleaned tree)")
    print(f"{'expression':36} {'lxml':>8} {'compiled':>9} {'ratio':>6}")
    totals = [0.0, 0.0]
    for name, original, fast in expressions():
        for tree in trees:
            expected, got = original(tree), fast(tree)
            if [id(e) for e in expected] != [id(e) for e in got]:  # both held: ids are nodes
                raise SystemExit(f"{name}: the compiled expression selects other elements")
        if not isinstance(fast, CompiledXPath):
            print(f"{name:36} left to lxml (outside the subset)")
            continue
        slow_ms = statistics.median(timed(original, trees) for _ in range(args.repeat)) * 1000
        fast_ms = statistics.median(timed(fast, trees) for _ in range(args.repeat)) * 1000
        totals[0] += slow_ms / pages
        totals[1] += fast_ms / pages
        print(f"{name:36} {slow_ms / pages:8.3f} {fast_ms / pages:9.3f} {fast_ms / slow_ms:6.2f}")
    print(f"{'all':36} {totals[0]:8.3f} {totals[1]:9.3f} {totals[1] / totals[0]:6.2f}")


if __name__ == "__main__":
    main()
