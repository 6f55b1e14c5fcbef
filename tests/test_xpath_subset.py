"""trafilatura's pruning and content-finding expressions compiled to Python select exactly
what lxml selects."""

from __future__ import annotations

import random
import re
from copy import deepcopy
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import pytest
import trafilatura.xpaths
from lxml.etree import XPath
from trafilatura import main_extractor
from trafilatura.htmlprocessing import convert_tags, tree_cleaning
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from aggregator.demo import SITE_DIR
from aggregator.extract import xpath_parse, xpath_subset
from aggregator.extract.xpath_subset import TRAFILATURA_LISTS, CompiledXPath, Unsupported, compiled

PAGES = Path(__file__).parent / "data" / "pages"
NS = {"re": "http://exslt.org/regular-expressions"}


def _originals() -> list[tuple[str, Any]]:
    """trafilatura's expressions of TRAFILATURA_LISTS as lxml XPath, swapped already or not."""
    found = []
    for list_name in TRAFILATURA_LISTS:
        for index, expression in enumerate(getattr(trafilatura.xpaths, list_name, [])):
            source = expression.path
            original = XPath(source, namespaces=NS) if "re:" in source else XPath(source)
            found.append((f"{list_name}[{index}]", original))
    return found


def _same(expected: list[Any], got: list[Any]) -> bool:
    # lxml hands out one proxy per node while it is referenced: identity is node identity.
    return len(expected) == len(got) and all(a is b for a, b in zip(expected, got, strict=True))


@pytest.fixture(scope="module")
def page_trees() -> list[Any]:
    """The fixture and demo pages, raw as trafilatura loads them and after its cleaning."""
    paths = sorted(PAGES.glob("*.html")) + sorted(Path(SITE_DIR).rglob("*.html"))
    trees = []
    for path in paths:
        if path.name.endswith(".feed.html"):
            continue  # a feed's own HTML fragment, not a page
        raw = load_html(path.read_bytes())
        assert raw is not None, path
        trees.append(raw)
        options = Extractor()
        trees.append(convert_tags(tree_cleaning(deepcopy(raw), options), options, ""))
    return trees


# Attribute values made of the words the expressions look for, cut and joined the
# ways sites write class names, so that the random trees hit every branch.
_WORDS = sorted(
    {
        word
        for _, expression in _originals()
        for word in re.findall(r"[A-Za-z][A-Za-z_-]{2,}", expression.path)
        if word not in {"self", "contains", "starts-with", "translate", "test", "not", "and"}
    }
)


def _fragments(source: str) -> list[str]:
    """An expression's own strings, its regular expressions' alternatives read as text."""
    return sorted(
        {
            re.sub(r"[\^$()?:\[\]]", "", fragment.replace("\\s", " "))
            for literal in re.findall(r"'([^']*)'", source)
            for fragment in literal.split("|")
        }
        - {""}
    )


# Each random tree draws its values from one expression's strings, or from all.
_FRAGMENT_POOLS = [_fragments(expression.path) for _, expression in _originals()]
_FRAGMENT_POOLS = [pool for pool in _FRAGMENT_POOLS if pool] + [
    sorted(set().union(*_FRAGMENT_POOLS))
]
_TAGS = [
    "div",
    "section",
    "aside",
    "p",
    "span",
    "list",
    "item",
    "ul",
    "ol",
    "li",
    "details",
    "header",
    "a",
    "h1",
    "cite",
    "quote",
    "article",
    "main",
    "figure",
    "img",
]
_ATTRIBUTES = [
    "class",
    "id",
    "style",
    "role",
    "aria-hidden",
    "data-component",
    "data-lp-replacement-content",
    "href",
]


def _value(rng: random.Random, fragments: list[str]) -> str:
    if rng.random() < 0.5:
        core = rng.choice(fragments)
    else:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 3))]
        cased = [
            w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.2 else w
            for w in words
        ]
        core = rng.choice([" ", "-", "_", "", "__"]).join(cased)
    return (
        rng.choice(["", "", " ", "x-", "Hide-"]) + core + rng.choice(["", "", " ", "-1", ":none"])
    )


def _random_tree(rng: random.Random) -> Any:
    fragments = rng.choice(_FRAGMENT_POOLS)
    root = lxml.etree.Element("body")
    nodes = [root]
    for _ in range(rng.randint(5, 60)):
        element = lxml.etree.SubElement(rng.choice(nodes), rng.choice(_TAGS))
        names = rng.sample(_ATTRIBUTES, rng.randint(0, 4))  # also the order written
        for name in names:
            element.set(
                name,
                "true" if name == "aria-hidden" and rng.random() < 0.5 else _value(rng, fragments),
            )
        if rng.random() < 0.1:
            element.set("style", rng.choice(["display:none", "display: none", "border: 1px"]))
        nodes.append(element)
    return root


def test_every_expression_of_this_trafilatura_is_compiled() -> None:
    originals = _originals()
    assert originals, "trafilatura.xpaths has none of the lists: see TRAFILATURA_LISTS"
    left = [
        name
        for name, expression in originals
        if not isinstance(compiled(expression), CompiledXPath)
    ]
    # A newer trafilatura may use XPath beyond the subset: those are left to lxml
    # (correct, only slower); this names them so the subset can follow.
    assert left == []


@pytest.mark.parametrize("name_and_expression", _originals(), ids=lambda pair: pair[0])
def test_compiled_selects_what_lxml_selects_on_pages(
    name_and_expression: tuple[str, Any], page_trees: list[Any]
) -> None:
    _, expression = name_and_expression
    fast = compiled(expression)
    for tree in page_trees:
        assert _same(expression(tree), fast(tree))


def test_compiled_selects_what_lxml_selects_on_random_trees() -> None:
    rng = random.Random(20261207)
    expressions = [(name, expression, compiled(expression)) for name, expression in _originals()]
    hits = dict.fromkeys((name for name, _, _ in expressions), 0)
    for _ in range(1000):
        tree = _random_tree(rng)
        for name, expression, fast in expressions:
            expected = expression(tree)
            hits[name] += len(expected)
            assert _same(expected, fast(tree)), (name, lxml.etree.tostring(tree))
    # The random trees reach every expression's matches, not only its misses.
    assert all(hits.values()), hits


def test_a_union_of_attributes_reads_the_first_in_source_order() -> None:
    expression = ".//*[re:test(@id|@class, '^share')]"
    fast = CompiledXPath(expression)
    lxml_expression = XPath(expression, namespaces=NS)
    tree = lxml.html.fromstring(
        '<div><p id="share" class="body">a</p><p id="body" class="share">b</p>'
        '<p class="share">c</p></div>'
    )
    expected = lxml_expression(tree)
    assert [p.text for p in expected] == ["a", "c"]
    assert _same(expected, fast(tree))


@pytest.mark.parametrize(
    "expression",
    [
        ".//*[contains(translate(@role, 'NAV', 'nav'), 'nav')]",
        # a character given twice is replaced as its first occurrence says
        ".//*[contains(translate(@role, 'NaN', 'nxy'), 'nxvigxtion')]",
        # true of an element without attributes: those cannot be skipped unread
        ".//*[not(@class) and not(@id)]",
        ".//*[self::div or self::p][not(.//h1) and @class]",
        ".//*[@aria-hidden='true' or starts-with(@id, 'reply-')]",
        ".//*[re:test(@class, 'HIDDEN', 'i')]",
        ".//cite|.//quote|.//p[@class]",
        ".//p",
        ".//*[self::div or self::p][1]",
        ".//p[@class][1]",
        "(.//*[self::div or self::p][@class])[1]|(.//quote)[1]",
        "(.//cite)[1]",
    ],
)
def test_small_expressions_agree_with_lxml(expression: str) -> None:
    tree = lxml.html.fromstring(
        "<div><p class='Hidden' role='Navigation'>a<cite>c</cite></p><div class='abc'><h1>t</h1>"
        "<quote>q</quote><p aria-hidden='true' id='reply-1'>r</p></div>"
        "<div class='bc'><p>x</p></div></div>"
    )
    for context in (tree, tree.getroottree()):
        expected = XPath(expression, namespaces=NS)(context)
        assert expected, expression
        assert _same(expected, CompiledXPath(expression)(context))


@pytest.mark.parametrize(
    "expression",
    [
        "(.//main)[2]",
        "//div[@class]",
        ".//div[2]",
        ".//div[1][@class]",
        "(.//main)",
        ".//*[count(.//p) > 2]",
        ".//*[@class != 'x']",
        ".//*[text()]",
        ".//div/p",
        ".//*[.//p[@class]]",
        ".//*[translate(@class, 'ab', 'A')='Ac']",
    ],
)
def test_expressions_beyond_the_subset_are_left_to_lxml(expression: str) -> None:
    with pytest.raises(Unsupported):
        CompiledXPath(expression)
    original = XPath(expression)
    assert compiled(original) is original


def test_remembered_answers_stay_right_past_the_memory_bound() -> None:
    fast = CompiledXPath(".//*[re:test(@class, '^keep-[0-9]+$')]")
    count = xpath_parse._MEMO_SIZE + 500
    tree = lxml.html.fromstring(
        "<div>"
        + "".join(f"<p class='{kind}-{i}'>x</p>" for i in range(count) for kind in ("keep", "drop"))
        + "</div>"
    )
    for _ in range(2):
        assert [p.get("class") for p in fast(tree)] == [f"keep-{i}" for i in range(count)]


def test_the_extractor_installs_them_in_place_and_installing_again_changes_nothing() -> None:
    import aggregator.extract.extractor  # noqa: F401  (its import installs them)

    lists = [getattr(trafilatura.xpaths, name) for name in TRAFILATURA_LISTS]
    assert all(isinstance(expression, CompiledXPath) for found in lists for expression in found)
    before = [list(expressions) for expressions in lists]
    assert xpath_subset.install() == 0
    assert [list(expressions) for expressions in lists] == before
    # trafilatura's modules hold the same list objects, so they call the compiled ones.
    assert vars(main_extractor)["OVERALL_DISCARD_XPATH"] is trafilatura.xpaths.OVERALL_DISCARD_XPATH


def test_a_union_of_many_elements_comes_in_document_order() -> None:
    expression = ".//p[@class]|.//quote|(.//cite)[1]"
    tree = lxml.html.fromstring(
        "<div>"
        + "".join(f"<p class='c{i}'>x<quote>q</quote></p><cite>{i}</cite>" for i in range(30))
        + "</div>"
    )
    expected = XPath(expression)(tree)
    assert len(expected) == 61
    assert _same(expected, CompiledXPath(expression)(tree))


def test_uninstalled_gives_trafilatura_its_own_expressions_for_a_while() -> None:
    import aggregator.extract.extractor  # noqa: F401  (its import installs them)

    overall = trafilatura.xpaths.OVERALL_DISCARD_XPATH
    with xpath_subset.uninstalled():
        assert all(isinstance(expression, lxml.etree.XPath) for expression in overall)
        page = (PAGES / "split-chrome.html").read_bytes()
        assert trafilatura.extract(page)  # trafilatura works with them, of course
    assert all(isinstance(expression, CompiledXPath) for expression in overall)
