"""The HTML page at ``/`` (issue 6): rendered pure, then in a real headless chromium.

The browser test needs Debian's chromium and chromium-driver plus the selenium
package; it skips, saying which is missing, without them (.ci/run installs them).
It never reaches the network: the page has no external assets and chromium runs
with background networking off.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load_config
from aggregator.models import Assignment, NewArticle, StoryFilter, StorySource
from aggregator.publish.page import MAX_OUTLETS_LISTED, STYLE_CSP_SOURCE, PageView, render_page
from aggregator.publish.story_page import render_missing_story, render_story_page
from aggregator.serve.server import create_app
from aggregator.storage import Storage
from tests.test_publisher import AIR_DEFENCE, CONTRACT, FRIGATE
from tests.test_server import serving

VIEW = PageView(
    title="Defence Digest",
    stories=(FRIGATE, AIR_DEFENCE, CONTRACT),
    tags=("air defence", "naval"),
    story_filter=StoryFilter(tags=("naval",), query='frigate "x"'),
    query_string="tag=naval&q=frigate",
    next_query="tag=naval&after=abc",
    slices=(("Naval only", "/naval.xml"),),
)


def page_text(view: PageView = VIEW) -> str:
    return render_page(view).decode("utf-8")


def test_page_has_autodiscovery_for_every_format_and_slice() -> None:
    html = page_text()
    head = html.split("</head>", 1)[0]
    assert '<link rel="alternate" type="application/rss+xml"' in head
    assert 'type="application/atom+xml" title="Defence Digest (Atom)"' in head
    assert 'type="application/feed+json"' in head
    assert 'href="/feed.xml?tag=naval&amp;q=frigate"' in head
    assert 'href="/naval.xml"' in head


def test_page_shows_title_outlet_time_count_and_sources() -> None:
    html = page_text()
    assert "First &quot;Miecznik&quot;" not in html  # titles are text, escaped minimally
    assert 'First "Miecznik" frigate floated out at Gdynia &amp; heads for &lt;sea' in html
    assert '<span class="lead">Baltic Naval Review</span>' in html
    assert '<time datetime="2025-06-02T14:30:00Z">02 Jun 2025, 14:30 UTC</time>' in html
    assert 'href="https://defence-wire.example.net/syndicated/miecznik-float-out"' in html


def test_page_shows_outlets_by_relation_like_the_feed() -> None:
    # Issue 17: every story was a collapsed "N sources", one source or many, with no
    # split between other outlets' reports and copies of the lead.
    html = page_text()
    assert "<details" not in html and "<summary" not in html
    assert (
        '<p class="outlets related">Also reported by'
        ' <a href="https://lodz-defence.example.pl/analiza/miecznik">Łódź Defence Daily</a></p>'
    ) in html
    assert '<p class="outlets duplicate">Republished by <a href=' in html
    assert '<a class="count" href="/stories/3f2a9c41d07e.html">3 outlets</a>' in html
    assert '<a class="count" href="/stories/c41d8e0f5b22.html">1 outlet</a>' in html
    contract = html.split('id="story-c41d8e0f5b22"', 1)[1].split("</li>", 1)[0]
    assert "reported by" not in contract and "Republished" not in contract
    # The latest report is shown when it is later than the first.
    assert 'latest <time datetime="2025-06-02T16:40:00Z">' in html


def test_every_story_links_its_reading_view_and_its_title_the_lead() -> None:
    # The reading view was reachable only from the "N outlets" count: every story, one
    # outlet or many, now says "Read here"; the title still opens the lead article.
    html = page_text()
    for story in (FRIGATE, AIR_DEFENCE, CONTRACT):
        item = html.split(f'id="story-{story.id}"', 1)[1].split("</li>", 1)[0]
        assert item.count(f'<a class="read" href="/stories/{story.id}.html">Read here</a>') == 1
        assert f'<h2><a href="{escape(story.link or "")}">' in item


def test_long_outlet_lists_end_with_a_link_to_the_reading_view() -> None:
    others = tuple(
        StorySource(f"Outlet {n}", f"Report {n}", f"https://o{n}.test/a", None, "related")
        for n in range(MAX_OUTLETS_LISTED + 3)
    )
    story = replace(CONTRACT, sources=(*CONTRACT.sources, *others, others[0]))
    html = page_text(replace(VIEW, stories=(story,)))
    line = html.split('<p class="outlets related">', 1)[1].split("</p>", 1)[0]
    assert line.count("<a href=") == MAX_OUTLETS_LISTED + 1  # each outlet once
    assert line.endswith('<a href="/stories/c41d8e0f5b22.html">and 3 more</a>')


def test_page_has_search_box_tag_filters_and_paging() -> None:
    html = page_text()
    assert 'value="frigate &quot;x&quot;"' in html  # the search box keeps the query
    assert '<input type="hidden" name="tag" value="naval">' in html
    assert '<a href="/?tag=naval" aria-current="page">naval</a>' in html
    assert '<a href="/?tag=air+defence">air defence</a>' in html
    assert '<a rel="next" href="/?tag=naval&amp;after=abc">Older stories</a>' in html


def test_page_is_self_contained_and_escapes_everything() -> None:
    hostile = replace(
        CONTRACT,
        title='<script>alert("t")</script>',
        link="javascript:alert(1)",
        sources=(replace(CONTRACT.sources[0], feed_name="<img src=x onerror=y>"),),
    )
    html = page_text(replace(VIEW, stories=(hostile,)))
    assert "<script" not in html and "<img" not in html and "javascript:" not in html
    assert "http://" not in html and "https://" not in html.split("</head>", 1)[0]
    assert '<meta name="viewport"' in html
    assert STYLE_CSP_SOURCE.startswith("'sha256-")


def test_empty_page_says_so() -> None:
    html = page_text(replace(VIEW, stories=(), next_query=None))
    assert "No stories match." in html and "Older stories" not in html
    unfiltered = replace(VIEW, stories=(), next_query=None, story_filter=StoryFilter())
    assert "No stories yet." in page_text(unfiltered)


HEALTHY = {"ok": 2, "failing": 1, "gone": 0, "disabled": 1, "pending": 0}


@pytest.mark.parametrize(
    ("states", "says"),
    [
        ({**HEALTHY, "ok": 0, "gone": 1}, "Every feed is failing (2 of 2)"),
        ({**HEALTHY, "ok": 0, "failing": 0, "pending": 3}, "have not been fetched yet"),
        ({**HEALTHY, "ok": 0, "failing": 0}, "No feeds are followed"),
    ],
)
def test_page_says_why_no_stories_arrive(states: dict[str, int], says: str) -> None:
    # Issue 17: with every feed failing the page said only "No stories match.".
    empty = replace(VIEW, stories=(), next_query=None, story_filter=StoryFilter())
    html = page_text(replace(empty, feed_states=states))
    notice = html.split('<p class="notice" role="status">', 1)[1].split("</p>", 1)[0]
    assert says in notice
    assert "No stories" not in html
    if "failing" in says:
        assert '<a href="/feeds.html">feed health</a>' in notice
        # Stories already stored stay listed under the notice.
        assert 'class="notice"' in page_text(replace(VIEW, feed_states=states))


def test_no_notice_while_some_feed_brings_stories() -> None:
    assert 'class="notice"' not in page_text(replace(VIEW, feed_states=HEALTHY))
    pending = {**HEALTHY, "pending": 4}
    assert 'class="notice"' not in page_text(replace(VIEW, feed_states=pending))
    # Feeds not fetched yet explain only an empty list.
    unfetched = {**HEALTHY, "ok": 0, "failing": 0, "pending": 2}
    assert 'class="notice"' not in page_text(replace(VIEW, feed_states=unfetched))


# --- the reading view (issue 17) ------------------------------------------------------


def test_story_view_lists_every_source_with_date_and_relation() -> None:
    html = render_story_page(FRIGATE, "Defence Digest").decode("utf-8")
    assert "<title>First &quot;Miecznik&quot;" not in html
    assert '<a href="/">← Defence Digest</a>' in html
    assert "<p>The programme is now costed at €2.4bn &amp; remains on schedule.</p>" in html
    assert "<strong>" not in html  # text, never the article's HTML
    sections = html.split("<h2>Sources</h2>", 1)[1]
    headings = [part.split("</h3>", 1)[0] for part in sections.split("<h3>")[1:]]
    assert headings == ["Source", "Also reported by", "Republished by"]
    assert (
        'Defence Wire: <a href="https://defence-wire.example.net/syndicated/miecznik-float-out">'
        'Miecznik frigate floated out (syndicated)</a> (<time datetime="2025-06-02T15:10:00Z">'
    ) in sections
    assert "What the Miecznik launch means for the Baltic &lt;analysis&gt;</a> (date unknown)" in (
        sections
    )
    assert "by Anna Nowak" in html and "3 outlets" in html
    assert '<link rel="alternate" type="application/json"' in html
    assert 'href="/stories/3f2a9c41d07e"' in html


def test_story_view_escapes_everything() -> None:
    hostile = replace(
        CONTRACT,
        title="<script>alert(1)</script>",
        link="javascript:alert(1)",
        content_text="<img src=x onerror=y>",
        sources=(replace(CONTRACT.sources[0], feed_name="<b>x</b>", url="data:text/html,x"),),
    )
    html = render_story_page(hostile, "<i>Site</i>").decode("utf-8")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "javascript:" not in html and "data:" not in html and "<i>" not in html
    missing = render_missing_story("<script>", "Site").decode("utf-8")
    assert "<script" not in missing and "No story has the id &lt;script&gt;." in missing


# --- in a real browser ----------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if CHROMIUM is None:
        return "chromium is not installed (Debian: apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=390,844")  # a phone
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download anything
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("page") / "feeds.yaml"
    path.write_text(
        "settings:\n  database: db.sqlite\nfeeds:\n"
        "  - name: Naval\n    url: https://naval.test/feed\n    tags: [naval]\n"
        "  - name: Air Desk\n    url: https://air.test/feed\n    tags: [air]\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    # Story a was first reported before b, but Air Desk reported it since: by latest
    # activity it comes first (issue 17), by first publication it would come last.
    add_dated(storage, 1, "a", None, hours=-3)
    add_dated(storage, 2, "b", None, hours=-2)
    add_dated(storage, 2, "a-air", "story-a", hours=-1)
    try:
        with serving(create_app(config)) as base_url:
            yield base_url
    finally:
        storage.close()


def add_dated(storage: Storage, feed_id: int, key: str, story: str | None, *, hours: int) -> None:
    """Store one article published ``hours`` from NOW; one joining ``story`` is another
    outlet's own report of it (relation ``related``)."""
    moment = NOW + timedelta(hours=hours)
    article = NewArticle(
        feed_id=feed_id, entry_key=key, guid=None, url=f"https://naval.test/{key}",
        canonical_url=f"https://naval.test/{key}", title=f"Frigate {key} floated out",
        author=None, summary="", feed_content="", text="First paragraph.\n\nSecond one.",
        html="<p>Body.</p>", image=None, published_at=moment, fetched_at=moment,
        extraction_status="extracted", extraction_note="", signature=None, bands=(),
    )  # fmt: skip
    assignment = Assignment(story, "related" if story else "new", 0.7 if story else None)
    with storage.transaction():
        storage.add_article(article, assignment, f"story-{key}")
    storage.index_for_search()  # as at the end of the refresh that stored it


def test_page_renders_stories_in_headless_chromium(
    browser: Any, site_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site_url + "/")
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "li.story h2")]
    assert titles == ["Frigate a floated out", "Frigate b floated out"]  # latest activity first
    counts = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".count")]
    assert counts == ["2 outlets", "1 outlet"]
    # Other outlets are shown, not folded away, and named by their relation.
    also = browser.find_element(By.CSS_SELECTOR, "li.story .outlets.related")
    assert also.is_displayed() and also.text == "Also reported by Air Desk"
    assert not browser.find_elements(By.CSS_SELECTOR, "details, summary")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".outlets")) == 1
    # Readable on a phone: nothing wider than the screen.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    assert not png_is_blank(screenshot.read_bytes())


def test_reading_view_opens_from_the_page_in_chromium(browser: Any, site_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site_url + "/")
    browser.find_element(By.LINK_TEXT, "2 outlets").click()
    assert browser.current_url == site_url + "/stories/story-a.html"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Frigate a floated out"
    paragraphs = [p.text for p in browser.find_elements(By.CSS_SELECTOR, ".body p")]
    assert paragraphs == ["First paragraph.", "Second one."]
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "article h3")]
    assert headings == ["Source", "Also reported by"]
    sources = [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".sources li")]
    assert sources == [
        "Naval: Frigate a floated out (24 Nov 2026, 06:00 UTC)",
        "Air Desk: Frigate a-air floated out (24 Nov 2026, 08:00 UTC)",
    ]
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser.find_element(By.PARTIAL_LINK_TEXT, "Defence news").click()  # back to the list
    assert browser.current_url == site_url + "/"


def test_a_single_outlet_story_opens_its_reading_view_in_chromium(
    browser: Any, site_url: str
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site_url + "/")
    single = browser.find_element(By.ID, "story-story-b")
    title = single.find_element(By.CSS_SELECTOR, "h2 a")
    assert title.get_attribute("href") == "https://naval.test/b"  # the lead, as before
    read = single.find_element(By.LINK_TEXT, "Read here")
    assert read.is_displayed()
    read.click()
    assert browser.current_url == site_url + "/stories/story-b.html"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Frigate b floated out"
    assert len(browser.find_elements(By.CSS_SELECTOR, "li.story")) == 0


def test_search_box_and_tag_filter_work_in_chromium(browser: Any, site_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    browser.get(site_url + "/")
    box = browser.find_element(By.CSS_SELECTOR, "input[type=search]")
    box.send_keys("frigate b")
    box.submit()
    # Both are plain navigations: read the stories once the old page is gone, not
    # while it is still there (its elements go stale under the reads).
    WebDriverWait(browser, 10).until(staleness_of(box))
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "li.story h2")]
    assert titles == ["Frigate b floated out"]
    tag = browser.find_element(By.LINK_TEXT, "naval")
    tag.click()
    WebDriverWait(browser, 10).until(staleness_of(tag))
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "li.story h2")]
    assert titles == ["Frigate a floated out"]
    # Autodiscovery as a feed reader sees it: resolved against the page's address.
    feeds = browser.execute_script(
        "return [...document.querySelectorAll('link[rel=alternate]')].map(l => l.href)"
    )
    assert feeds[0] == site_url + "/feed.xml?tag=naval"


def png_is_blank(data: bytes) -> bool:
    """True when a PNG is one flat colour: its unfiltered scanlines hold (almost) a
    single byte value. Decoded with zlib alone, so the test needs no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    channels = {2: 3, 6: 4}[data[25]]  # colour type: RGB or RGBA (what chromium writes)
    pixels = zlib.decompress(b"".join(_chunks(data, b"IDAT")))
    stride = width * channels
    rows = _unfilter(pixels, stride, channels, height)
    colours = {bytes(row[i : i + channels]) for row in rows[:: max(1, height // 50)] for i in
               range(0, stride, channels * 7)}  # fmt: skip
    return len(colours) <= 2


def _chunks(data: bytes, kind: bytes) -> Iterator[bytes]:
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == kind:
            yield data[offset + 8 : offset + 8 + length]
        offset += 12 + length


def _unfilter(raw: bytes, stride: int, bpp: int, height: int) -> list[bytearray]:
    """Undo PNG's per-row filters (none, sub, up, average, Paeth)."""
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = row[x - bpp] if x >= bpp else 0
            up = previous[x]
            corner = previous[x - bpp] if x >= bpp else 0
            row[x] = (row[x] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(row)
        previous = row
    return rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    estimate = left + up - corner
    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
    return (left, up, corner)[distances.index(min(distances))]


@pytest.fixture(scope="module")
def failing_site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two feeds, both failing, no stories: what a new admin with a typo'd feeds.yaml
    or no network sees."""
    path = tmp_path_factory.mktemp("failing") / "feeds.yaml"
    path.write_text(
        "settings:\n  database: db.sqlite\nfeeds:\n"
        "  - name: Naval\n    url: https://naval.test/feed\n"
        "  - name: Air Desk\n    url: https://air.test/feed\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    for feed_id, error in ((1, "DNS lookup failed: naval.test"), (2, "HTTP 404")):
        storage.record_fetch_failure(
            feed_id, now=NOW, next_check=NOW + timedelta(hours=1), error=error, status=None
        )
    try:
        with serving(create_app(config)) as base_url:
            yield base_url
    finally:
        storage.close()


def test_failing_feeds_are_explained_and_lead_to_feed_health_in_chromium(
    browser: Any, failing_site_url: str
) -> None:
    # Issue 17: with every feed failing the page said "No stories match.".
    from selenium.webdriver.common.by import By

    browser.get(failing_site_url + "/")
    notice = browser.find_element(By.CSS_SELECTOR, ".notice")
    assert notice.text.startswith("Every feed is failing (2 of 2)")
    assert "No stories" not in browser.find_element(By.TAG_NAME, "main").text
    notice.find_element(By.LINK_TEXT, "feed health").click()
    assert browser.current_url == failing_site_url + "/feeds.html"
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    cells = {row.find_element(By.TAG_NAME, "td").text: row.text for row in rows}
    assert set(cells) == {"Naval", "Air Desk"}
    assert "failing" in cells["Naval"] and "DNS lookup failed: naval.test" in cells["Naval"]
    summary = browser.find_element(By.CSS_SELECTOR, "main .meta").text
    assert summary.startswith("Status degraded · 2 feeds: 0 ok, 2 failing, 0 pending")
    # The table scrolls inside its box on a phone; the page itself does not.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


# Notes and URLs with no place to break a line: what a failing feed with a long URL,
# query string and error shows on /feeds.html.
LONG_URL = (
    "http://127.0.0.1:34101/feeds/category/naval-and-maritime-defence-procurement/rss.xml"
    "?format=full&session=0123456789abcdef0123456789abcdef0123456789abcdef"
)
LONG_ERRORS = (
    f"HTTP 404 at {LONG_URL}&page=1",
    "DNS lookup failed: averyveryveryverylonghostnamewithnobreaksatallfordefencenews.example",
)


@pytest.fixture(scope="module")
def long_notes_site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("long-notes") / "feeds.yaml"
    path.write_text(
        f'settings:\n  database: db.sqlite\nfeeds:\n  - url: "{LONG_URL}"\n'
        "  - name: Naval\n    url: https://naval.test/feed\n"
    )
    config = load_config(path)
    storage = Storage.open(config.database_path)
    storage.sync_feeds(config.feeds, NOW)
    for feed_id, error in zip((1, 2), LONG_ERRORS, strict=True):
        storage.record_fetch_failure(
            feed_id, now=NOW, next_check=NOW + timedelta(hours=1), error=error, status=404
        )
    try:
        with serving(create_app(config)) as base_url:
            yield base_url
    finally:
        storage.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_long_notes_and_urls_wrap_on_feed_health_in_chromium(
    browser: Any, long_notes_site_url: str, width: int
) -> None:
    """A long note (an error, a URL) was cut off at the right of /feeds.html, behind a
    sideways scroll, even 1280 px wide: it wraps now, on a desktop and on a phone."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(width, 900)
    try:
        browser.get(long_notes_site_url + "/feeds.html")
        overflow = browser.execute_script(
            "const s = document.querySelector('.scroll');"
            "return [s.scrollWidth - s.clientWidth, document.documentElement.scrollWidth"
            " - document.documentElement.clientWidth, document.documentElement.clientWidth]"
        )
        assert overflow[:2] == [0, 0]  # nothing to scroll sideways, table or page
        notes = browser.find_elements(By.CSS_SELECTOR, "tbody td.note")
        assert len(notes) == 2
        for note in notes:  # every note fully on screen, its words all shown
            assert note.rect["x"] >= 0 and note.rect["x"] + note.rect["width"] <= overflow[2]
            assert note.is_displayed()
        texts = " ".join(note.text.replace("\n", "") for note in notes)
        assert LONG_ERRORS[0] in texts and LONG_ERRORS[1] in texts
        feed = browser.find_element(By.CSS_SELECTOR, "tbody td.feed")
        assert feed.rect["x"] + feed.rect["width"] <= overflow[2]
    finally:
        browser.set_window_size(390, 844)
