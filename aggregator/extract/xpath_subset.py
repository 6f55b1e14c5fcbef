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

The part understood (anything else raises ``Unsupported``, and that expression is
left to lxml, so an upgrade of trafilatura never changes what is selected):

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
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import lxml.etree

log = logging.getLogger(__name__)

# Elements only: lxml's iterators also yield comments and processing instructions,
# which ``*`` does not match.
_ELEMENTS = lxml.etree.Element

Predicate = Callable[[Any], bool]

# Attribute values whose regular-expression answer each re:test remembers.
_MEMO_SIZE = 4096
StringOf = Callable[[Any], str]


class Unsupported(ValueError):
    """The expression uses XPath beyond this module's subset: leave it to lxml."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<literal>'[^']*'|"[^"]*")
    | (?P<symbol>\.//|//|::|!=|<=|>=|[\[\]()@|,=<>/.*+$-])
    | (?P<name>[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)
    | (?P<number>\d+(?:\.\d*)?)
    )""",
    re.VERBOSE,
)


def _tokens(source: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    source = source.strip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise Unsupported(f"cannot read {source[position : position + 20]!r}")
        tokens.append(match.group(match.lastgroup or "symbol"))
        position = match.end()
    return tokens


def _first_value(names: tuple[str, ...]) -> StringOf:
    """XPath's string value of ``@a|@b``: the value of the first present in source order."""

    def first(element: Any) -> str:
        present = [(name, found) for name in names if (found := element.get(name)) is not None]
        if not present:
            return ""
        if len(present) == 1:
            return str(present[0][1])
        order = element.keys()
        return str(min(present, key=lambda pair: order.index(pair[0]))[1])

    return first


def _translation(source: str, target: str) -> dict[int, int | None]:
    # XPath's translate: each character of source becomes the one at its place in
    # target; those past target's end are removed; a repeated one counts first only.
    table: dict[int, int | None] = {}
    for index, char in enumerate(source):
        table.setdefault(ord(char), ord(target[index]) if index < len(target) else None)
    return table


def _translated(
    check: Callable[[str], bool], table: dict[int, int | None]
) -> Callable[[str], bool]:
    return lambda value: check(value.translate(table))


def _on_value(
    names: tuple[str, ...], table: dict[int, int | None] | None, check: Callable[[str], bool]
) -> Predicate:
    """A test of an attribute's string value, its answer remembered per value.

    Pages repeat their class names, sites repeat them across pages, and the
    regular expressions are long alternations: each value is tested once (the memory
    bounded). Written out for one attribute, the common case: this runs on most of a
    page's elements.
    """
    if table is not None:
        check = _translated(check, table)
    answers: dict[str, bool] = {}
    if len(names) == 1:
        name = names[0]

        def test_one(element: Any) -> bool:
            value = element.get(name) or ""
            answer = answers.get(value)
            if answer is None:
                if len(answers) >= _MEMO_SIZE:
                    answers.clear()
                answer = answers[value] = check(value)
            return answer

        return test_one
    value_of = _first_value(names)

    def test_first(element: Any) -> bool:
        value = value_of(element)
        answer = answers.get(value)
        if answer is None:
            if len(answers) >= _MEMO_SIZE:
                answers.clear()
            answer = answers[value] = check(value)
        return answer

    return test_first


@dataclass(frozen=True)
class _Step:
    """``.//tag[predicates]``: tag None for ``*``; test None when there is no predicate."""

    tag: str | None
    test: Predicate | None
    # The tags the first predicate allows when it is only ``self::`` tests, so the walk
    # asks lxml for those elements alone instead of testing each in Python.
    tags: tuple[str, ...] | None
    # When the predicates read only these attributes and are false on an element that
    # has none of them (most of a page's elements), the walk skips such elements unread.
    attribute_names: frozenset[str] | None
    # ``.//x[...][1]``: only the first match among each parent's children (the child
    # step's position); ``(.//x[...])[1]``: only the first match in the document.
    first_of_parent: bool = False
    first_only: bool = False


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.position = 0
        # What the predicate being read looks at: attribute names, and whether it
        # also tests the element's name or descendants.
        self.read: set[str] = set()
        self.structural = False

    # -- reading tokens
    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, found {token!r}")
        self.position += 1
        return token

    def literal(self) -> str:
        token = self.take()
        if token[:1] not in ("'", '"'):
            raise Unsupported(f"expected a string, found {token!r}")
        return token[1:-1]

    def name(self) -> str:
        token = self.take()
        if not re.fullmatch(r"[A-Za-z_][\w.\-]*", token):
            raise Unsupported(f"expected a name, found {token!r}")
        return token

    # -- the grammar
    def union(self) -> list[_Step]:
        steps = [self.path()]
        while self.peek() == "|":
            self.take()
            steps.append(self.path())
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return steps

    def path(self) -> _Step:
        if self.peek() != "(":
            return self.step()
        self.take()
        step = self.step()
        self.take(")")
        self.position_one()
        return replace(step, first_only=True)

    def position_one(self) -> None:
        """``[1]``, the only position understood."""
        self.take("[")
        self.take("1")
        self.take("]")

    def step(self) -> _Step:
        self.take(".//")
        tag = None if self.peek() == "*" else self.name()
        if tag is None:
            self.take("*")
        predicates: list[Predicate] = []
        tags: tuple[str, ...] | None = None
        attribute_names: set[str] | None = set()
        first = True
        first_of_parent = False
        while self.peek() == "[":
            if self.tokens[self.position + 1 : self.position + 3] == ["1", "]"]:
                self.position_one()
                first_of_parent = True
                break  # a predicate after the position would test one element: not understood
            self.take()
            start = self.position
            self.read, self.structural = set(), False
            predicate = self.or_expr()
            self.take("]")
            if first and tag is None:
                tags = _self_tests(self.tokens[start : self.position - 1])
            if first and tags is not None:
                first = False
                continue  # the walk applies it
            first = False
            predicates.append(predicate)
            if self.structural or attribute_names is None:
                attribute_names = None
            else:
                attribute_names |= self.read
        test = _all_of(predicates) if predicates else None
        if test is None or not attribute_names or test(lxml.etree.Element("bare")):
            attribute_names = None
        return _Step(
            tag,
            test,
            tags,
            frozenset(attribute_names) if attribute_names else None,
            first_of_parent=first_of_parent,
        )

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]

        def either(element: Any) -> bool:
            for part in parts:
                if part(element):
                    return True
            return False

        return either

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return _all_of(parts)

    def unary(self) -> Predicate:
        token = self.peek()
        if token == "not" and self.tokens[self.position + 1 : self.position + 2] == ["("]:
            self.take()
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            return lambda element: not inner(element)
        if token == "(":
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        return self.primary()

    def primary(self) -> Predicate:
        token = self.peek()
        if token == "self":
            self.take()
            self.take("::")
            tag = self.name()
            self.structural = True
            return lambda element: bool(element.tag == tag)
        if token == ".//":
            self.take()
            tag = self.name()
            self.structural = True
            if self.peek() in ("[", "/", "//"):
                raise Unsupported("only a bare .//name inside a predicate")
            return lambda element: next(element.iterdescendants(tag), None) is not None
        if token == "@":
            names = self.attributes()
            if self.peek() in ("!=", "<", ">", "<=", ">="):
                raise Unsupported("only = compares")
            wanted = None
            if self.peek() == "=":
                self.take()
                wanted = self.literal()
            if len(names) == 1:
                name = names[0]
                if wanted is None:
                    return lambda element: element.get(name) is not None
                return lambda element: bool(element.get(name) == wanted)
            if wanted is None:
                return lambda element: any(element.get(name) is not None for name in names)
            return lambda element: any(element.get(name) == wanted for name in names)
        if token in ("contains", "starts-with", "re:test"):
            return self.function(self.take())
        raise Unsupported(f"unexpected {token!r}")

    def attributes(self) -> tuple[str, ...]:
        names = []
        while True:
            self.take("@")
            names.append(self.name())
            self.read.add(names[-1])
            if self.peek() != "|" or self.tokens[self.position + 1 : self.position + 2] != ["@"]:
                return tuple(names)
            self.take("|")

    def string(self) -> tuple[tuple[str, ...], dict[int, int | None] | None]:
        """An attribute's string value, translated or not: the names and the table."""
        token = self.peek()
        if token == "@":
            return self.attributes(), None
        if token == "translate":
            self.take()
            self.take("(")
            names, inner = self.string()
            if inner is not None:
                raise Unsupported("translate of translate")
            self.take(",")
            source = self.literal()
            self.take(",")
            target = self.literal()
            self.take(")")
            return names, _translation(source, target)
        raise Unsupported(f"unexpected {token!r} as a string")

    def function(self, name: str) -> Predicate:
        self.take("(")
        names, table = self.string()
        self.take(",")
        argument = self.literal()
        flags = ""
        if name == "re:test" and self.peek() == ",":
            self.take()
            flags = self.literal()
        self.take(")")
        check: Callable[[str], bool]
        if name == "contains":
            if len(names) == 1 and table is None:  # a substring test costs less than a lookup
                attribute = names[0]
                return lambda element: argument in (element.get(attribute) or "")

            def check(value: str) -> bool:
                return argument in value

        elif name == "starts-with":

            def check(value: str) -> bool:
                return value.startswith(argument)

        else:
            # As lxml's EXSLT re:test: Python's re, case folded when the flags hold "i".
            search = re.compile(argument, re.IGNORECASE if "i" in flags else 0).search

            def check(value: str) -> bool:
                return search(value) is not None

        return _on_value(names, table, check)


def _all_of(parts: Sequence[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def every(element: Any) -> bool:
        for part in parts:
            if not part(element):
                return False
        return True

    return every


def _self_tests(tokens: Sequence[str]) -> tuple[str, ...] | None:
    """The tags of a predicate that is only ``self::a or self::b ...``, else None."""
    if len(tokens) < 3 or (len(tokens) + 1) % 4:
        return None
    tags = []
    for index in range(0, len(tokens), 4):
        part = tokens[index : index + 4]
        if part[:2] != ["self", "::"] or (len(part) == 4 and part[3] != "or"):
            return None
        tags.append(part[2])
    return tuple(tags)


class CompiledXPath:
    """A compiled expression; called like lxml's ``XPath`` with an element or a tree."""

    def __init__(self, source: str) -> None:
        self.path = source
        steps = _Parser(source).union()
        plain = [
            step.tag
            for step in steps
            if step.tag is not None and step == _Step(step.tag, None, None, None)
        ]
        if len(steps) > 1 and len(plain) == len(steps):
            # .//a|.//b: one walk asks lxml for both, in document order
            steps = [_Step(None, None, tuple(plain), None)]
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
    def _select(cls, context: Any, step: _Step) -> list[Any]:
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
    def _walk(context: Any, step: _Step) -> Iterator[Any]:
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
    """The compiled form of an lxml ``XPath``, or the expression itself when outside the subset."""
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
    """Swap the compiled expressions into trafilatura's pruning lists; how many were swapped.

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
                swapped += 1
    return swapped
