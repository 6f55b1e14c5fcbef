"""A hostile-content corpus (issue 7): every byte the service reads comes from strangers.

Each case carries its expected outcome. Parsing cases run on bytes; the SSRF and
external-entity cases count the hits of a forbidden target listening on 127.0.0.1,
which must see none; one end-to-end case serves a hostile feed on loopback, runs the
real pipeline (guard on) and checks what every published format contains.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load_config
from aggregator.errors import BlockedURL, ParseError
from aggregator.extract.extractor import extract_article
from aggregator.extract.options import ExtractOptions
from aggregator.fetch import check_url_allowed
from aggregator.models import FetchResult, ParsedFeed
from aggregator.parse.parser import parse_feed
from aggregator.pipeline import PipelineContext, refresh_feeds
from aggregator.publish.feeds import FORMATS
from aggregator.publish.output import render_from_storage
from aggregator.sanitize import clean_title, sanitize_html
from aggregator.storage import Storage
from tests.loopback import Route, Site

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TRIED: list[str] = []  # every hostile input tried, for the count in the report


def site_answering(body: bytes = b"secret: the forbidden target answered") -> Site:
    """Serves ``body`` (as RSS) at every path on 127.0.0.1 and records each path asked for."""
    return Site(fallback=Route(200, body, {"Content-Type": "application/rss+xml"}))


@pytest.fixture
def forbidden() -> Iterator[Site]:
    with site_answering() as server:
        yield server


def _parse(body: bytes) -> ParsedFeed | None:
    try:
        return parse_feed(FetchResult("https://feed.example/", "https://feed.example/", 200, body))
    except ParseError:
        return None  # refusing the whole feed is a fine outcome for garbage


def _fields(parsed: ParsedFeed | None) -> list[str]:
    if parsed is None:
        return []
    return [parsed.title] + [
        value
        for entry in parsed.entries
        for value in (entry.title, entry.summary_html, entry.content_html, entry.link)
    ]


def _rss(doctype: str, title: str, body: str, extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0"><channel><title>Outlet</title>'
        f"<item><title>{title}</title><link>https://news.example/a</link>"
        f"<description>{body}</description>{extra}</item></channel></rss>"
    ).encode()


LAUGHS = "\n".join(
    [
        "<!DOCTYPE rss [",
        '<!ENTITY l0 "lol-lol-lol-lol-lol-lol-lol-lol-lol-lol">',
        *(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10)),
        "]>",
    ]
)
QUADRATIC = '<!DOCTYPE rss [<!ENTITY big "' + "A" * 50_000 + '">]>'
BOMBS = {
    "billion laughs in a title and body": _rss(LAUGHS, "Frigate &l9;", "&l9;"),
    "quadratic blowup": _rss(QUADRATIC, "Tank", "&big;" * 2000),
    "laughs inside an Atom feed": (
        f'<?xml version="1.0"?>\n{LAUGHS.replace("rss", "feed")}\n'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>&l9;</title>'
        '<entry><title>&l9;</title><id>urn:x</id><link href="https://news.example/b"/>'
        "<summary>&l9;</summary></entry></feed>"
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_entity_bombs_do_not_expand(name: str) -> None:
    TRIED.append(name)
    body = BOMBS[name]
    fields = _fields(_parse(body))
    # Left as literal references or dropped; never multiplied (escaping may add a bit).
    assert all(len(value) <= 2 * len(body) for value in fields), name
    assert not any("A" * 1000 in value for value in fields)
    assert sum(value.count("lol") for value in fields) < 100


def _external_entities(port: int) -> dict[str, bytes]:
    target = f"http://127.0.0.1:{port}"
    return {
        "file entity in the body": _rss(
            '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "Leak &x;", "&x;"
        ),
        "http entity to loopback": _rss(
            f'<!DOCTYPE rss [<!ENTITY x SYSTEM "{target}/entity">]>', "Ping &x;", "&x;"
        ),
        "parameter entity and external DTD": _rss(
            f'<!DOCTYPE rss SYSTEM "{target}/dtd" [<!ENTITY % p SYSTEM "{target}/param"> %p;]>',
            "Param",
            "text",
        ),
        "xinclude": _rss(
            "",
            "XInclude",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{target}/xi"/>',
        ),
        "xml-stylesheet": (
            f'<?xml version="1.0"?><?xml-stylesheet href="{target}/xsl"?>'
            "<rss version='2.0'><channel><title>t</title><item><title>x</title>"
            "<link>https://news.example/c</link></item></channel></rss>"
        ).encode(),
    }


def test_external_entities_reach_neither_the_filesystem_nor_the_network(
    forbidden: Site,
) -> None:
    for name, body in _external_entities(forbidden.port).items():
        TRIED.append(name)
        fields = _fields(_parse(body))
        assert not any("root:" in value for value in fields), name
        assert not any("forbidden target" in value for value in fields), name
    assert forbidden.hits == []


SCRIPTED_HTML = {
    "script element": "<p>Hull</p><script>alert(1)</script>",
    "event handler": '<img src="https://img.example/a.jpg" onerror="alert(1)">',
    "javascript link": '<a href="javascript:alert(1)">more</a>',
    "mixed-case javascript": '<a href="JaVaScRiPt:alert(1)">more</a>',
    "tab-split javascript": '<a href="jav&#x09;ascript:alert(1)">more</a>',
    "data link": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "data image": '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "vbscript link": '<a href="vbscript:msgbox(1)">x</a>',
    "svg onload": "<svg onload=alert(1)><circle r=1></circle></svg>",
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "style attribute": '<p style="background:url(javascript:alert(1))">Radar</p>',
    "style element": "<style>body{background:url(javascript:alert(1))}</style>",
    "form": '<form action="https://evil.example/"><input name=q></form>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "object": '<object data="https://evil.example/x.swf"></object>',
    "base href": '<base href="javascript:alert(1)//">',
    "unclosed attribute": '<a href="https://ok.example/" onclick="alert(1)>broken',
    "comment trick": "<!--<script>alert(1)</script>--><p>ok</p>",
    "nested script": "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "srcset with javascript": '<img src="https://i.example/a" srcset="javascript:alert(1) 1x">',
}
FORBIDDEN_IN_HTML = re.compile(
    r"<script|<iframe|<object|<embed|<svg|<style|<form|<meta|<base|\son\w+\s*=|javascript:"
    r"|vbscript:|data:|style\s*=|srcset",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", sorted(SCRIPTED_HTML))
def test_scripts_handlers_and_dangerous_urls_never_survive_sanitising(name: str) -> None:
    TRIED.append(name)
    cleaned = sanitize_html(SCRIPTED_HTML[name], "https://news.example/a")
    assert not FORBIDDEN_IN_HTML.search(cleaned), cleaned


HOSTILE_TITLES = {
    "control characters": ("Frigate\x00 \x07launched\x1b[31m\x7f \x9b", "Frigate launched[31m"),
    "markup": ("<b>Tank</b> <script>alert(1)</script>order", "Tank order"),
    "entities twice": ("Ships &amp;lt;b&amp;gt;", "Ships &lt;b&gt;"),
    "newlines and tabs": ("Radar\n\tupgrade\r\n", "Radar upgrade"),
    "bidi override": ("Drone \u202edelivery", "Drone \u202edelivery"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TITLES))
def test_titles_are_one_line_of_plain_text(name: str) -> None:
    TRIED.append(name)
    raw, expected = HOSTILE_TITLES[name]
    cleaned = clean_title(raw)
    assert not any(unicodedata.category(ch) == "Cc" for ch in cleaned)
    assert "<" not in cleaned.replace("&lt;", "")
    if name != "bidi override":  # kept: it is text, and feeds escape it
        assert cleaned == expected


ABSURD_DATES = {
    "year 1900": ("Mon, 01 Jan 1900 00:00:00 GMT", None),
    "year 2999": ("Tue, 01 Jan 2999 00:00:00 GMT", NOW),
    "year 0001": ("Mon, 01 Jan 0001 00:00:00 GMT", None),
    "garbage": ("the day after tomorrow", None),
    "epoch": ("Thu, 01 Jan 1970 00:00:00 GMT", None),
}


@pytest.mark.parametrize("name", sorted(ABSURD_DATES))
def test_absurd_dates_are_dropped_or_clamped(name: str) -> None:
    TRIED.append(name)
    raw, expected = ABSURD_DATES[name]
    body = _rss("", "Dated", "text", f"<pubDate>{raw}</pubDate>")
    parsed = parse_feed(FetchResult("https://f.example/", "https://f.example/", 200, body), now=NOW)
    assert parsed.entries[0].published == expected


def test_a_deeply_nested_page_does_not_break_extraction() -> None:
    TRIED.append("200 000 nested divs")
    page = ("<html><body>" + "<div>" * 200_000 + "<p>deep</p>" + "</div>" * 200_000).encode()
    extract_article(page, "https://news.example/deep")  # None or an article; no exception


def test_a_huge_page_is_cut_before_trafilatura_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    TRIED.append("50 MB page")
    seen: list[int] = []
    import aggregator.extract.extractor as extractor

    real = extractor._extract

    def spy(page: bytes | str, url: str, options: ExtractOptions) -> Any:
        seen.append(len(page))
        return real(page, url, options)

    monkeypatch.setattr(extractor, "_extract", spy)
    paragraph = b"<p>" + b"Padding sentence for a page far too big. " * 20 + b"</p>\n"
    page = b"<html><body>" + paragraph * (50_000_000 // len(paragraph))
    extract_article(page, "https://news.example/huge", options=ExtractOptions(max_bytes=200_000))
    assert seen == [200_000]


SSRF_URLS = {
    "loopback": "http://127.0.0.1:{port}/admin",
    "loopback name": "http://localhost:{port}/admin",
    "decimal loopback": "http://2130706433:{port}/admin",
    "hex loopback": "http://0x7f000001:{port}/admin",
    "short loopback": "http://127.1:{port}/admin",
    "ipv6 loopback": "http://[::1]:{port}/admin",
    "ipv4-mapped ipv6": "http://[::ffff:127.0.0.1]:{port}/admin",
    "cloud metadata": "http://169.254.169.254/latest/meta-data/",
    "private range": "http://10.0.0.1/",
    "unspecified": "http://0.0.0.0:{port}/",
    "file scheme": "file:///etc/passwd",
    "gopher scheme": "gopher://127.0.0.1:{port}/_x",
    "javascript scheme": "javascript:alert(1)",
}


def _fake_resolve(host: str, port: int) -> list[str]:
    """No DNS in tests: names resolve to what an attacker's zone would say."""
    zone = {"localhost": ["127.0.0.1", "::1"], "rebind.example": ["93.184.216.34", "10.1.2.3"]}
    return zone.get(host, ["93.184.216.34"])


@pytest.mark.parametrize("name", sorted(SSRF_URLS))
def test_ssrf_targets_are_refused_by_the_guard(name: str) -> None:
    TRIED.append(name)
    with pytest.raises(BlockedURL):
        check_url_allowed(SSRF_URLS[name].format(port=8), resolve=_fake_resolve)


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    TRIED.append("dns answer mixing public and private")
    with pytest.raises(BlockedURL):
        check_url_allowed("http://rebind.example/", resolve=_fake_resolve)


def _hostile_feed(port: int) -> bytes:
    """One item per forbidden article link, plus scripted content and a hostile title."""
    items = [
        (
            f"<item><title>Item {index} \x01<script>x()</script></title>"
            f"<link>{url.format(port=port).replace('&', '&amp;')}</link>"
            f"<guid>hostile-{index}</guid>"
            f"<pubDate>Tue, 01 Jan 2999 00:00:00 GMT</pubDate>"
            "<description><![CDATA[<p onclick='x()'>Armoured vehicles ordered."
            '<a href="javascript:alert(1)">more</a><img src="data:image/png;base64,AA">'
            "<script>steal()</script></p>]]></description></item>"
        )
        for index, url in enumerate(SSRF_URLS.values())
        if "169.254" not in url and "10.0.0.1" not in url  # never leave loopback
    ]
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile outlet</title>'
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def test_a_hostile_feed_end_to_end_publishes_nothing_dangerous(
    tmp_path: Path, forbidden: Site
) -> None:
    with site_answering(_hostile_feed(forbidden.port)) as feed_server:
        config_path = tmp_path / "feeds.yaml"
        config_path.write_text(
            "settings:\n  database: db.sqlite\n  workers: 0\n"
            f"feeds:\n  - name: Hostile\n    url: http://127.0.0.1:{feed_server.port}/feed.xml\n"
        )
        config = load_config(config_path)
        storage = Storage.open(config.database_path)
        ctx = PipelineContext.create(config, storage, workers=0)
        try:
            outcomes = refresh_feeds(ctx, config.enabled_feeds)
            rendered = [
                render_from_storage(storage, config.settings, fmt, 100).body.decode()
                for fmt in FORMATS
            ]
            statuses = {
                row["extraction_status"]
                for row in storage.db.query("SELECT extraction_status FROM articles")
            }
            published = [row["published_at"] for row in storage.db.query("SELECT * FROM articles")]
        finally:
            ctx.close()
            storage.close()
    TRIED.append("hostile feed end to end")
    assert [outcome.status for outcome in outcomes] == ["ok"]
    assert feed_server.hits == ["/feed.xml"]  # the admin's feed URL is fetched as given
    assert forbidden.hits == []  # no article link reached the forbidden target
    # http(s) links to private addresses are refused; file:, gopher: and javascript:
    # links are dropped at parse time (issue 19), so those items use the feed's text.
    assert statuses == {"refused", "fallback"}
    assert all(moment is None or moment <= datetime.now(UTC).isoformat() for moment in published)
    for body in rendered:
        assert "steal()" not in body and "<script" not in body.replace("&lt;script", "")
        assert "javascript:" not in body, body[body.find("javascript:") - 300 :][:400]
        assert "data:image" not in body
        assert "onclick" not in body and "\x01" not in body


def test_the_corpus_size_is_reported() -> None:
    """Not a check: prints how many hostile inputs this module tries (for the report)."""
    count = (
        len(BOMBS)
        + len(_external_entities(0))
        + len(SCRIPTED_HTML)
        + len(HOSTILE_TITLES)
        + len(ABSURD_DATES)
        + len(SSRF_URLS)
        + 4  # deep page, huge page, mixed DNS answer, the end-to-end feed
    )
    print(f"hostile inputs tried: {count}")
    assert count >= 50
