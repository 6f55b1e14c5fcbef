"""The rules feeds.yaml's entries must keep together, pure: the same feed listed twice
under two spellings of its URL, two feeds with one name, one tag spelt two ways, and
what makes a feed URL unusable (issue 17: edits that passed ``check-config`` and bit
later; issue 19: ``?`` or ``#x`` made a second feed).

config.py turns the first :class:`Clash` into a ConfigError with the file's line;
``import-opml`` uses the same rules, so what it adds always passes ``check-config``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aggregator.urls import canonicalize_url

__all__ = [
    "RESERVED_OUTPUT_PATHS",
    "Clash",
    "feed_url_key",
    "feed_url_problem",
    "name_clashes",
    "output_path_clashes",
    "split_tags",
    "tag_clashes",
    "url_clashes",
]


@dataclass(frozen=True)
class Clash:
    """Entry ``index`` of the feeds list breaks a rule in ``field`` (``url``, ``name``,
    ``tags``): ``problem`` says how, naming the entry it clashes with."""

    index: int
    field: str
    problem: str
    section: str = "feeds"


def feed_url_key(url: str) -> str:
    """What makes two feed URLs the same feed: the canonical URL (scheme and host in
    lower case, no default port, no fragment, no empty ``?``, no tracking parameters)
    without a trailing slash, so ``…/feed`` and ``…/feed/`` meet."""
    canonical = canonicalize_url(url)
    scheme, netloc, path, query, _ = urlsplit(canonical)
    return f"{scheme}://{netloc}{path.rstrip('/')}" + (f"?{query}" if query else "")


def feed_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a feed's URL, or None when it can."""
    if not url.lower().startswith(("http://", "https://")):
        return f"expected an http:// or https:// URL, got {url!r}"
    parts = urlsplit(url)
    if any(char.isspace() for char in parts.netloc):
        return f"a space in the host ({parts.netloc!r})"
    if any(char.isspace() for char in url):
        return f"a space in the URL; write it as %20 ({url!r})"
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return f"invalid port in {url!r}"
    if not parts.hostname:
        return f"expected an http:// or https:// URL with a host, got {url!r}"
    return None


def split_tags(value: object) -> object:
    """``tags: naval, uk`` is two tags, as the reader meant (``?tag=`` reads commas as
    "any of", so a tag with a comma could never be chosen). Strips each tag, drops the
    empty pieces of a comma list, and keeps the first of exact repeats. Raises
    ValueError on a tag that is empty; anything not text is left for the model."""
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        return value
    tags: list[str] = []
    for item in values:
        pieces = [piece.strip() for piece in item.split(",")]
        if not any(pieces):
            raise ValueError(f"empty tag ({item!r}); remove it")
        tags += [piece for piece in pieces if piece and piece not in tags]
    return tuple(tags)


def url_clashes(urls: Sequence[str]) -> Iterator[Clash]:
    """Each feed whose URL is another's in a different spelling (or the same)."""
    seen: dict[str, int] = {}
    for index, url in enumerate(urls):
        first = seen.setdefault(feed_url_key(url), index)
        if first != index:
            yield Clash(index, "url", f"duplicate of feeds[{first}] ({urls[first]})")


def name_clashes(names: Sequence[str]) -> Iterator[Clash]:
    """Each feed named like an earlier one, ignoring case: ``?source=`` and ``aggregator
    feeds --reset NAME`` pick feeds by name."""
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        first = seen.setdefault(name.strip().casefold(), index)
        if first != index:
            yield Clash(
                index,
                "name",
                f"{name!r} is already the name of feeds[{first}];"
                " names pick feeds in ?source= and `feeds --reset`, so each must be its own",
            )


def tag_clashes(tags_per_feed: Sequence[Sequence[str]]) -> Iterator[Clash]:
    """Each tag spelt differently from its first use, by case only (``Naval`` and
    ``naval`` would show as two tags that select the same stories)."""
    first_spelling: dict[str, tuple[str, int]] = {}
    for index, tags in enumerate(tags_per_feed):
        for tag in tags:
            spelling, where = first_spelling.setdefault(tag.casefold(), (tag, index))
            if spelling != tag:
                yield Clash(
                    index,
                    "tags",
                    f"{tag!r} differs from {spelling!r} (feeds[{where}]) only by case;"
                    " write one spelling",
                )


# Built-in paths a slice must not shadow.
RESERVED_OUTPUT_PATHS = frozenset({"/feed.xml", "/feed.atom", "/feed.json"})


def output_path_clashes(paths: Sequence[str]) -> Iterator[Clash]:
    """Each named slice served at a built-in path or at an earlier slice's."""
    seen: set[str] = set()
    for index, path in enumerate(paths):
        if path in seen or path in RESERVED_OUTPUT_PATHS:
            problem = "duplicate path" if path in seen else "path is built in"
            yield Clash(index, "path", f"{problem} ({path})", section="outputs")
        seen.add(path)
