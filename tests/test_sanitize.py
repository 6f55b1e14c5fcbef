"""Sanitiser: what foreign HTML may keep, and how titles become plain text."""

from __future__ import annotations

import pytest

from aggregator.sanitize import clean_title, escape_text_as_html, sanitize_html

BASE = "https://news.example.com/2025/06/frigate.html"


def _clean(html: str) -> str:
    return sanitize_html(html, BASE)


def _img(path: str) -> str:
    return f'<img src="https://news.example.com/2025/06/{path}">'


def _a(href: str | None, text: str = "x") -> str:
    attr = f'href="{href}" ' if href else ""
    return f'<a {attr}rel="noopener noreferrer">{text}</a>'


# --- dangerous content is removed -------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a<script>alert(1)</script>b</p>", "<p>ab</p>"),
        ("<p>a<style>p{color:red}</style>b</p>", "<p>ab</p>"),
        ('<p>a<iframe src="https://evil.example/">fallback</iframe>b</p>', "<p>ab</p>"),
        ('<p>a<object data="x.swf"><embed src="x.swf"></object>b</p>', "<p>ab</p>"),
        ("<p>a<noscript><img src=t.gif></noscript>b</p>", "<p>ab</p>"),
        ('<form action="/x"><p>kept<input name="q"></p></form>', "<p>kept</p>"),
        ('<p onclick="steal()" style="color:red" class="x" id="y">t</p>', "<p>t</p>"),
        ('<img src="a.jpg" onerror="steal()" style="border:0">', _img("a.jpg")),
        ("<p>a<!-- secret -->b</p>", "<p>ab</p>"),
        ('<div><span lang="pl">Łódź</span></div>', "Łódź"),
    ],
    ids=["script", "style", "iframe", "object", "noscript", "form", "attrs", "onerror",
         "comment", "unknown-tags"],
)  # fmt: skip
def test_dangerous_markup_is_removed(html: str, expected: str) -> None:
    assert _clean(html) == expected


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "ftp://files.example.com/x",
    ],
)
def test_non_http_links_lose_their_href(href: str) -> None:
    assert _clean(f'<a href="{href}">x</a>') == _a(None)


def test_data_url_images_are_dropped() -> None:
    assert _clean('<p><img src="data:image/png;base64,iVBORw0KGgo=" alt="x">t</p>') == "<p>t</p>"


@pytest.mark.parametrize(
    "img",
    [
        '<img src="https://t.example/p.gif" width="1" height="1">',
        '<img src="/p.gif" width="0" height="0" alt="">',
        '<img src="/p.gif" height="1">',
        '<img src="/p.gif" width="1px" height="1px">',
        '<img src="/p.gif" WIDTH=" 1 ">',
        # Known counting hosts, whatever size they claim (issue 6).
        '<img src="https://pixel.wp.com/b.gif?host=x&amp;blog=1" alt="">',
        '<img src="http://feeds.feedburner.com/~r/Naval/~4/abc" width="300">',
        '<img src="https://Stats.WordPress.com/g.gif?v=1">',
    ],
)
def test_tracking_pixels_are_dropped(img: str) -> None:
    assert _clean(f"<p>text{img}</p>") == "<p>text</p>"


def test_real_images_with_size_are_kept() -> None:
    html = '<img src="/i/hull.jpg" alt="Hull &quot;1&quot;" title="t" width="640" height="10">'
    assert _clean(html) == (
        '<img src="https://news.example.com/i/hull.jpg" alt="Hull &quot;1&quot;" title="t"'
        ' width="640" height="10">'
    )


def test_image_with_pixel_like_alt_text_is_kept() -> None:
    # Only real width/height attributes count, not text that looks like them.
    html = '<img src="/a.jpg" alt=\'width="1" height="1">\'>'
    assert _clean(html).startswith('<img src="https://news.example.com/a.jpg"')


# --- URLs are made absolute -------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "absolute"),
    [
        ("/defence/frigates", "https://news.example.com/defence/frigates"),
        ("next.html", "https://news.example.com/2025/06/next.html"),
        ("../05/old.html", "https://news.example.com/2025/05/old.html"),
        ("//cdn.example.net/x", "https://cdn.example.net/x"),
        ("?page=2&amp;s=1", "https://news.example.com/2025/06/frigate.html?page=2&amp;s=1"),
        ("https://other.example.org/a", "https://other.example.org/a"),
    ],
)
def test_relative_links_become_absolute(href: str, absolute: str) -> None:
    assert _clean(f'<a href="{href}" title="T">x</a>') == (
        f'<a href="{absolute}" title="T" rel="noopener noreferrer">x</a>'
    )


def test_relative_images_become_absolute() -> None:
    assert _clean('<img src="img/ship.jpg" alt="Ship">') == (
        '<img src="https://news.example.com/2025/06/img/ship.jpg" alt="Ship">'
    )


def test_relative_urls_without_a_usable_base_are_dropped() -> None:
    assert sanitize_html('<a href="/x">x</a><img src="/i.jpg">', "") == _a(None)


# --- allowed structure is kept ----------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        "<table><thead><tr><th>Ship</th></tr></thead><tbody><tr><td>Wicher</td></tr></tbody>"
        "</table>",
        "<ul><li>one</li></ul><ol><li>two</li></ol>",
        "<h2>a</h2><h3>b</h3><h4>c</h4><h5>d</h5><h6>e</h6>",
        "<blockquote><p><strong>s</strong><em>e</em><b>b</b><i>i</i><u>u</u></p></blockquote>",
        "<pre><code>x &lt; y</code></pre><hr><p>H<sub>2</sub>O, m<sup>2</sup><br>x</p>",
        '<figure><img src="https://news.example.com/a.jpg" alt="a"><figcaption>c</figcaption>'
        "</figure>",
    ],
    ids=["table", "lists", "headings", "inline", "code", "figure"],
)
def test_allowed_structure_is_kept(html: str) -> None:
    assert _clean(html) == html


def test_h1_becomes_h2() -> None:
    assert _clean('<h1 class="big">Title</h1><p>&lt;h1&gt; text</p>') == (
        "<h2>Title</h2><p>&lt;h1&gt; text</p>"
    )


def test_text_is_escaped_and_control_characters_dropped() -> None:
    assert _clean("<p>a & b < c\x00\x01\x1b</p>") == "<p>a &amp; b &lt; c</p>"


# --- escape_text_as_html ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("", ""),
        ("  \n\n ", ""),
        ("One paragraph.", "<p>One paragraph.</p>"),
        ("First.\n\nSecond.", "<p>First.</p><p>Second.</p>"),
        ("First.\r\n\r\n\r\nSecond.", "<p>First.</p><p>Second.</p>"),
        ("Line one\nline two", "<p>Line one<br>line two</p>"),
        ("R&D <costs> €5m", "<p>R&amp;D &lt;costs&gt; €5m</p>"),
    ],
)
def test_escape_text_as_html(text: str, html: str) -> None:
    assert escape_text_as_html(text) == html


# --- clean_title ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Plain title", "Plain title"),
        ("<b>Bold</b> <i>news</i>", "Bold news"),
        ("Frigate <script>alert(1)</script>launched", "Frigate launched"),
        ("BAE &amp; Saab", "BAE & Saab"),
        ("&lt;F-35&gt; &quot;Lightning&quot; &#8364;", '<F-35> "Lightning" €'),
        ("Tom &amp;amp; Jerry", "Tom &amp; Jerry"),  # entities are decoded once only
        ("R&D in Łódź", "R&D in Łódź"),
        ("  Spaced\n\tout \u00a0 title  ", "Spaced out title"),
        ("Bell\x07 and\x00 NEL\x85 and CSI\x9b", "Bell and NEL and CSI"),
        ("Line\r\nbreak", "Line break"),
        ("", ""),
    ],
)
def test_clean_title(title: str, expected: str) -> None:
    assert clean_title(title) == expected
