"""The subset of XPath 1.0 that ``xpath_subset`` compiles, read into Python predicates.

``parse(source)`` turns an expression into ``Step``s: the elements a walk asks lxml for
(by tag), and one predicate over an lxml element written as Python closures, with
XPath 1.0's meaning (``xpath_subset``'s docstring lists what is understood). Anything
else raises ``Unsupported``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from operator import methodcaller
from typing import Any

import lxml.etree

Predicate = Callable[[Any], bool]
StringOf = Callable[[Any], str]

# The attribute values whose answer each test of a value remembers.
_MEMO_SIZE = 4096


class Unsupported(ValueError):
    """The expression uses XPath beyond the subset: leave it to lxml."""


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
    bounded).
    """
    if table is not None:
        check = _translated(check, table)
    answers: dict[str, bool] = {}
    # One attribute, the common case: read by a C call, without a Python frame.
    value_of = methodcaller("get", names[0], "") if len(names) == 1 else _first_value(names)

    def test(element: Any) -> bool:
        value = value_of(element)
        answer = answers.get(value)
        if answer is None:
            if len(answers) >= _MEMO_SIZE:
                answers.clear()
            answer = answers[value] = check(value)
        return answer

    return test


@dataclass(frozen=True)
class Step:
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
    def union(self) -> list[Step]:
        steps = [self.path()]
        while self.peek() == "|":
            self.take()
            steps.append(self.path())
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return steps

    def path(self) -> Step:
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

    def step(self) -> Step:
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
        return Step(
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


def parse(source: str) -> list[Step]:
    """The expression's paths (joined by ``|``), or ``Unsupported``."""
    return _Parser(source).union()
