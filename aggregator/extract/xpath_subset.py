"""trafilatura's pruning and content-finding XPath, evaluated in Python instead of by lxml.

trafilatura removes boilerplate (navigation, share bars, comments, captions,
teasers) and finds the article's block with XPath expressions that test every
block's ``class``, ``id`` and ``style`` with EXSLT regular expressions
(``re:test``). lxml runs each ``re:test`` as a call back into Python, converting the
pattern (500 characters for the largest) and the attribute on every element, and
libxml2 builds a node-set for every ``self::div`` test: on news pages of some
thousand elements these expressions were a quarter of an extraction worker's CPU.
They use a small part of XPath 1.0, which this module compiles into Python
predicates over lxml elements with the same meaning: the same elements, in
document order, from the same regular expressions.

The part understood, read by ``xpath_parse`` (anything else raises ``Unsupported``,
and that expression is left to lxml, so an upgrade of trafilatura never changes what
is selected):

- paths ``.//*`` or ``.//name``, with predicates, ending in ``[1]`` or not, or
  ``(path)[1]``; joined by ``|``;
- in predicates: ``or``, ``and``, ``not(...)``, parentheses, ``self::name``, ``@a``
  (present), ``@a='x'``, ``.//name`` (a descendant exists), and
  ``contains``/``starts-with``/``re:test`` of ``@a``, ``@a|@b`` (XPath's string value
  of a node-set: the first attribute in source order) or ``translate(...)`` of one.

``install()`` swaps the compiled expressions into trafilatura's lists in place; the
extractor calls it when imported, in each extraction worker. ``bench/xpath_bench.py``
measures them, and ``tests/test_xpath_subset.py`` checks every swapped expression
against lxml's result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lxml.etree

from aggregator.extract.xpath_parse import Step, Unsupported, parse

__all__ = [
    "TRAFILATURA_LISTS",
    "CompiledXPath",
    "Unsupported",
    "compiled",
    "install",
    "uninstalled",
]

log = logging.getLogger(__name__)

# Elements only: lxml's iterators also yield comments and processing instructions,
# which ``*`` does not match.
_ELEMENTS = lxml.etree.Element


class CompiledXPath:
    """A compiled expression; called like lxml's ``XPath`` with an element or a tree."""

    def __init__(self, source: str) -> None:
        self.path = source
        steps = parse(source)
        plain = [
            step.tag
            for step in steps
            if step.tag is not None and step == Step(step.tag, None, None, None)
        ]
        if len(steps) > 1 and len(plain) == len(steps):
            # .//a|.//b: one walk asks lxml for both, in document order
            steps = [Step(None, None, tuple(plain), None)]
        self._steps = steps

    def __call__(self, context: Any) -> list[Any]:
        if isinstance(context, lxml.etree._ElementTree):
            context = context.getroot()  # lxml's XPath starts from the root element too
        if len(self._steps) == 1:
            return self._select(context, self._steps[0])
        # Held, not only their ids: lxml keeps one proxy per node while it is referenced.
        found = {
            id(element): element for step in self._steps for element in self._select(context, step)
        }
        if len(found) <= 1:
            return list(found.values())
        if len(found) <= _FEW:
            return sorted(found.values(), key=_document_position)
        return [element for element in context.iterdescendants(_ELEMENTS) if id(element) in found]

    @classmethod
    def _select(cls, context: Any, step: Step) -> list[Any]:
        matches = cls._walk(context, step)
        if step.first_only:
            first = next(matches, None)
            return [] if first is None else [first]
        if step.first_of_parent:
            # Document order meets each parent's children in order: its first match first.
            parents: dict[int, Any] = {}
            firsts = []
            for element in matches:
                parent = element.getparent()
                if id(parent) not in parents:
                    parents[id(parent)] = parent
                    firsts.append(element)
            return firsts
        return list(matches)

    def __repr__(self) -> str:
        return f"CompiledXPath({self.path!r})"

    @staticmethod
    def _walk(context: Any, step: Step) -> Iterator[Any]:
        if step.tags is not None:
            candidates = context.iterdescendants(*step.tags)
        elif step.tag is not None:
            candidates = context.iterdescendants(step.tag)
        else:
            candidates = context.iterdescendants(_ELEMENTS)
        test = step.test
        if test is None:
            yield from candidates
        elif step.attribute_names is None:
            yield from filter(test, candidates)
        else:
            names = step.attribute_names
            for element in candidates:
                keys = element.keys()
                if keys and not names.isdisjoint(keys) and test(element):
                    yield element


# A union of this many elements or fewer is put in document order by their positions
# rather than by a walk over the whole tree.
_FEW = 16


def _document_position(element: Any) -> list[int]:
    """The element's place in the document: its index among its siblings, from the root down."""
    position = []
    parent = element.getparent()
    while parent is not None:
        position.append(parent.index(element))
        element, parent = parent, parent.getparent()
    position.reverse()
    return position


# The lists of trafilatura.xpaths that an extraction runs on every page, whose items
# trafilatura only calls with a tree: the pruning ones (prune_unwanted_nodes) and
# the content finders (extract_content takes the first element of the first that
# finds one).
TRAFILATURA_LISTS = (
    "BODY_XPATH",
    "RAW_TREE_PRUNE_XPATH",
    "REMOVE_COMMENTS_XPATH",
    "REMOVE_COMMENTS_AND_LISTS_XPATH",
    "OVERALL_DISCARD_XPATH",
    "DISCARD_IMAGE_ELEMENTS",
    "TEASER_DISCARD_XPATH",
    "PRECISION_DISCARD_XPATH",
    "COMMENTS_DISCARD_XPATH",
)


def compiled(expression: Any) -> Any:
    """The compiled form of an lxml ``XPath``, or the expression itself when outside the subset.

    Its source is read from ``path``; the prefix ``re:`` is taken for EXSLT's regular
    expressions, as every trafilatura expression maps it.
    """
    if isinstance(expression, CompiledXPath):
        return expression
    source = getattr(expression, "path", None)
    if not isinstance(source, str):
        return expression
    try:
        return CompiledXPath(source)
    except Unsupported as reason:
        log.debug("left to lxml: %s (%s)", " ".join(source.split())[:80], reason)
        return expression


def install() -> int:
    """Swap the compiled expressions into trafilatura's lists; how many were swapped.

    In place, because trafilatura's modules imported the lists themselves. Running it
    again changes nothing.
    """
    import trafilatura.xpaths

    swapped = 0
    for list_name in TRAFILATURA_LISTS:
        expressions = getattr(trafilatura.xpaths, list_name, None)
        if not isinstance(expressions, list):
            continue
        for index, expression in enumerate(expressions):
            replacement = compiled(expression)
            if replacement is not expression:
                expressions[index] = replacement
                _ORIGINALS[(list_name, index)] = expression
                swapped += 1
    return swapped


# lxml's expressions that install() replaced, by list and place.
_ORIGINALS: dict[tuple[str, int], Any] = {}


@contextmanager
def uninstalled() -> Iterator[None]:
    """trafilatura's own lxml expressions inside the block, the compiled ones after it.

    For benchmarks that time trafilatura alone in a process that also extracts with it.
    """
    import trafilatura.xpaths

    compiled_ones = {}
    for (list_name, index), original in _ORIGINALS.items():
        expressions = getattr(trafilatura.xpaths, list_name)
        compiled_ones[(list_name, index)] = expressions[index]
        expressions[index] = original
    try:
        yield
    finally:
        for (list_name, index), replacement in compiled_ones.items():
            getattr(trafilatura.xpaths, list_name)[index] = replacement
