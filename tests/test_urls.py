"""Tests for aggregator.urls: one spelling per article, so copies across feeds meet."""

from __future__ import annotations

import pytest

from aggregator.urls import canonicalize_url, is_tracking_param

CASES = {
    "lowercase scheme and host, path case kept": (
        "HTTPS://News.Example.COM/Naval/Story",
        "https://news.example.com/Naval/Story",
    ),
    "default http port dropped": ("http://news.example:80/a", "http://news.example/a"),
    "default https port dropped": ("https://news.example:443/a", "https://news.example/a"),
    "other port kept": ("https://news.example:8443/a", "https://news.example:8443/a"),
    "fragment dropped": ("https://news.example/a#comments", "https://news.example/a"),
    "tracking params dropped, others kept in order": (
        "https://news.example/a?utm_source=rss&id=7&fbclid=x&gclid=y&page=2&UTM_Medium=feed",
        "https://news.example/a?id=7&page=2",
    ),
    "query order is not sorted": (
        "https://news.example/a?b=1&a=2&b=3",
        "https://news.example/a?b=1&a=2&b=3",
    ),
    "blank values kept": ("https://news.example/a?x=&y=1", "https://news.example/a?x=&y=1"),
    "only tracking params leaves no query": (
        "https://news.example/a?utm_campaign=spring",
        "https://news.example/a",
    ),
    "trailing dot of the host dropped": ("https://news.example./a", "https://news.example/a"),
    "empty path becomes slash": ("https://news.example", "https://news.example/"),
    "empty path with query": ("https://news.example?p=9", "https://news.example/?p=9"),
    "ipv6 literal kept in brackets": (
        "http://[2001:DB8::1]:8080/a?utm_source=x",
        "http://[2001:db8::1]:8080/a",
    ),
    "ipv6 literal default port dropped": ("http://[2001:db8::1]:80/", "http://[2001:db8::1]/"),
    "surrounding whitespace stripped": ("  https://news.example/a \n", "https://news.example/a"),
    "ftp untouched": ("ftp://Files.Example/X#y", "ftp://Files.Example/X#y"),
    "mailto untouched": ("mailto:Desk@News.Example", "mailto:Desk@News.Example"),
    "relative untouched": ("/articles/a?utm_source=x", "/articles/a?utm_source=x"),
    "bad port untouched": ("https://news.example:abc/", "https://news.example:abc/"),
}


@pytest.mark.parametrize(("url", "expected"), CASES.values(), ids=CASES.keys())
def test_canonicalize_url(url: str, expected: str) -> None:
    assert canonicalize_url(url) == expected


@pytest.mark.parametrize("url", [expected for _, expected in CASES.values()])
def test_canonical_form_is_a_fixed_point(url: str) -> None:
    assert canonicalize_url(url) == url


@pytest.mark.parametrize(
    ("name", "tracking"),
    [
        ("utm_source", True),
        ("UTM_Content", True),
        ("fbclid", True),
        ("gclid", True),
        ("mc_eid", True),
        ("pk_campaign", True),
        ("id", False),
        ("page", False),
        ("utm", False),
    ],
)
def test_is_tracking_param(name: str, tracking: bool) -> None:
    assert is_tracking_param(name) is tracking
