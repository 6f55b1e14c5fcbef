"""Extraction on the sample outlets' pages (messy, with navigation, cookie banners,
"Check Also" boxes, comment forms and share bars), and the fallback rule."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lxml.html
import pytest
import trafilatura
from click.testing import CliRunner
from trafilatura.metadata import extract_author
from trafilatura.utils import load_html

from aggregator.cli import cli
from aggregator.demo import SITE_DIR, DemoSite, demo_config_text
from aggregator.extract import extractor
from aggregator.extract.author import find_author
from aggregator.extract.body import (
    EXTRACTED,
    FAILED,
    FALLBACK,
    STEP_FEED_CONTENT,
    STEP_FEED_SUMMARY,
    ChosenBody,
    choose_body,
)
from aggregator.extract.extractor import (
    STEP_BALANCED,
    STEP_PRECISION,
    STEP_RECALL,
    STEP_SELECTORS,
    extract_article,
)
from aggregator.extract.options import ExtractOptions
from aggregator.extract.page import load_page
from aggregator.extract.pool import ExtractionPool
from aggregator.extract.text import detect_language, html_to_text
from aggregator.models import Article, Entry

BASE = "http://news.test"
MANIFEST = json.loads((SITE_DIR / "manifest.json").read_text().replace("{{BASE}}", BASE))


def page(url: str) -> bytes:
    path = SITE_DIR / url.removeprefix(BASE + "/")
    return path.read_bytes().replace(b"{{BASE}}", BASE.encode())


@pytest.mark.parametrize(("url", "phrase"), sorted(MANIFEST["body_phrases"].items()))
def test_body_is_extracted_without_boilerplate(url: str, phrase: str) -> None:
    article = extract_article(page(url), url)
    assert article is not None
    assert phrase in article.text
    for boilerplate in MANIFEST["boilerplate_phrases"]:
        assert boilerplate not in article.text
        assert boilerplate not in article.html
    assert "<script" not in article.html


def test_relative_links_and_images_resolve_against_the_page_url() -> None:
    url = f"{BASE}/harbourwatch/articles/type-41-frigate-greyhollow-floated-out-kelvik.html"
    article = extract_article(page(url), url)
    assert article is not None
    assert f'src="{BASE}/harbourwatch/images/' in article.html
    assert f'href="{BASE}/harbourwatch/articles/polar-supply' in article.html
    assert "](" not in article.text  # plain text carries no markdown link syntax


def test_windows_1252_page_decodes_accents() -> None:
    url = f"{BASE}/frontier-post/story/20261123-border-brigade-wheeled-howitzers.html"
    article = extract_article(page(url), url)
    assert article is not None and "Vérand" in article.text


def test_metadata_is_kept() -> None:
    url = f"{BASE}/harbourwatch/articles/type-41-frigate-greyhollow-floated-out-kelvik.html"
    article = extract_article(page(url), url)
    assert article is not None
    assert article.date and article.date.startswith("2026-11")
    assert article.author
    assert article.image and article.image.startswith("http")


@pytest.mark.parametrize("body", [b"", b"<html></html>", b"\x00\xff\xfe garbage", b"<p>Hi</p>"])
def test_pages_without_text_give_none_not_an_error(body: bytes) -> None:
    assert extract_article(body, f"{BASE}/empty.html") is None


def entry(content: str = "", summary: str = "") -> Entry:
    return Entry(
        key="k", guid=None, link=f"{BASE}/a", canonical_url=f"{BASE}/a", title="T",
        summary_html=summary, content_html=content,
    )  # fmt: skip


LONG = "The frigate completed sea trials. " * 20


def test_a_good_extraction_is_kept() -> None:
    chosen = choose_body(
        Article(text=LONG, html=f"<p>{LONG}</p>"), entry(summary="short"), min_chars=100
    )
    assert chosen.status == EXTRACTED and chosen.text == LONG


def test_no_extraction_falls_back_to_feed_content_then_summary() -> None:
    content = choose_body(
        None, entry(content="<p>Full feed text.</p>", summary="<p>Teaser</p>"), min_chars=100
    )
    assert (content.status, content.text) == (FALLBACK, "Full feed text.")
    assert "no main text found" in content.note
    summary = choose_body(None, entry(summary="<p>Only a teaser.</p>"), min_chars=100)
    assert (summary.status, summary.text) == (FALLBACK, "Only a teaser.")


def test_a_too_short_extraction_gives_way_to_longer_feed_text() -> None:
    chosen = choose_body(
        Article(text="We use cookies.", html="<p>We use cookies.</p>"),
        entry(content=f"<p>{LONG}</p>"),
        min_chars=100,
    )
    assert chosen.status == FALLBACK
    assert "too short (15 chars)" in chosen.note


def test_a_short_extraction_is_kept_when_the_feed_has_even_less() -> None:
    chosen = choose_body(
        Article(text="A short brief.", html="<p>A short brief.</p>"),
        entry(summary="Brief"),
        min_chars=100,
    )
    assert chosen.status == EXTRACTED


def test_nothing_anywhere_is_recorded_as_failed() -> None:
    chosen = choose_body(None, entry(), min_chars=100, reason="page fetch failed: 404")
    assert chosen.status == FAILED and chosen.text == "" and "404" in chosen.note


def test_html_to_text_keeps_one_paragraph_per_line() -> None:
    assert (
        html_to_text("<p>One <b>two</b></p><ul><li>three</li><li>four</li></ul>")
        == "One two\nthree\nfour"
    )
    assert html_to_text("  ") == ""


def test_worker_processes_give_the_same_result_as_inline(tmp_path: Path) -> None:
    url = next(iter(MANIFEST["body_phrases"]))
    pages = [(page(url), url), (b"", f"{BASE}/empty")]
    inline = list(ExtractionPool(0).extract_many(pages))
    with ExtractionPool(2) as pool:
        parallel = list(pool.extract_many(pages))
    assert parallel == inline and inline[0] is not None and inline[1] is None


# --- issue 5: the extraction chain, golden pages, per-feed options --------------------

PAGES_DIR = Path(__file__).parent / "data" / "pages"
GOLDEN_PAGES = sorted(path.stem for path in PAGES_DIR.glob("*.html") if "." not in path.stem)


def golden_body(name: str) -> ChosenBody:
    """What the pipeline would store for the page: the chain, then choose_body."""
    page_bytes = (PAGES_DIR / f"{name}.html").read_bytes()
    feed_path = PAGES_DIR / f"{name}.feed.html"
    feed_html = feed_path.read_text() if feed_path.exists() else ""
    article = extract_article(page_bytes, f"{BASE}/{name}/story.html")
    return choose_body(article, entry(content=feed_html), min_chars=400)


def render_golden(body: ChosenBody) -> str:
    return f"status: {body.status}\nstep: {body.step}\n\n{body.text}\n"


@pytest.mark.parametrize("name", GOLDEN_PAGES)
def test_golden_pages(name: str, update_golden: bool) -> None:
    rendered = render_golden(golden_body(name))
    path = PAGES_DIR / f"{name}.expected.txt"
    if update_golden:
        path.write_text(rendered)
    assert rendered == path.read_text(), f"run pytest --update-golden and review {path}"


def test_a_cookie_wall_gives_way_to_the_feed_text() -> None:
    body = golden_body("cookie-wall")
    assert (body.status, body.step) == (FALLBACK, STEP_FEED_CONTENT)
    assert "cookie wall" in body.note and "tracked carrier" in body.text


def test_a_page_of_links_is_doubted_after_the_recall_pass() -> None:
    # The precision pass finds nothing, the balanced one the links; the recall pass,
    # tried because of the doubt, finds nothing better (issue 16 added the balanced step).
    article = extract_article((PAGES_DIR / "link-list.html").read_bytes(), f"{BASE}/l.html")
    assert article is not None and article.step == STEP_BALANCED
    assert article.doubt == "mostly link text"
    assert golden_body("link-list").step == STEP_FEED_CONTENT


def test_an_article_split_around_ads_is_joined_with_images_and_links() -> None:
    url = f"{BASE}/naval/minehunter.html"
    article = extract_article((PAGES_DIR / "split-body.html").read_bytes(), url)
    assert article is not None and article.step == STEP_PRECISION and not article.doubt
    assert article.text.endswith("drone boats' control software.")  # the third block
    # The lazy-loaded picture, absolute, before the first paragraph; no ad banner.
    assert article.html.startswith(f'<figure><img src="{BASE}/media/minehunter-quay.jpg"')
    assert "banner-300x250" not in article.html
    assert f'<a href="{BASE}/naval/minehunter-programme-timeline">' in article.html
    assert "](" not in article.text and "Photo: Coastline Monitor" not in article.text
    assert (article.language, article.author, article.date) == ("en", "Ilse Marrow", "2026-11-20")
    assert article.image == f"{BASE}/media/minehunter-lead.jpg"


def test_drop_selectors_remove_blocks_and_keep_selectors_choose_them() -> None:
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes()
    default = extract_article(page_bytes, f"{BASE}/a.html")
    dropped = extract_article(  # the article's second block, the one after the ad
        page_bytes,
        f"{BASE}/a.html",
        options=ExtractOptions(drop=("div.ad-slot + div.article-chunk",)),
    )
    assert default is not None and "Crews have trained" in default.text
    assert dropped is not None and "Crews have trained" not in dropped.text
    assert "hybrid propulsion" in dropped.text and "control software" in dropped.text
    kept = extract_article(
        page_bytes, f"{BASE}/a.html", options=ExtractOptions(keep=("div.article-chunk",))
    )
    assert kept is not None and kept.step == STEP_SELECTORS
    assert "Advertisement" not in kept.text and "control software" in kept.text
    missing = extract_article(
        page_bytes, f"{BASE}/a.html", options=ExtractOptions(keep=("div.not-on-this-page",))
    )
    assert missing is not None and missing.step == STEP_PRECISION  # layout changed: whole page


def test_language_comes_from_the_feed_then_the_page_then_detection() -> None:
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes()
    declared = extract_article(page_bytes, f"{BASE}/a.html", options=ExtractOptions())
    assert declared is not None and declared.language == "en"
    undeclared = page_bytes.replace(b'<html lang="en">', b"<html>")
    detected = extract_article(undeclared, f"{BASE}/a.html")
    assert detected is not None and detected.language == "en"
    assert detect_language("Die Marine hat die zweite Fregatte der neuen Klasse geschickt.") == "de"
    assert detect_language("too short") is None


def test_a_page_in_another_language_than_the_feed_declares_is_refused() -> None:
    # target_language: trafilatura checks the text itself, not the lang attribute.
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes().replace(b'lang="en"', b'lang="de"')
    english = extract_article(page_bytes, f"{BASE}/a.html", options=ExtractOptions(language="en"))
    assert english is not None and english.language == "en"
    german = extract_article(page_bytes, f"{BASE}/a.html", options=ExtractOptions(language="de"))
    assert german is None  # the pipeline then uses the feed's own text


def test_oversized_html_is_cut_before_parsing() -> None:
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes()
    cut = page_bytes.index(b"A second hull")
    article = extract_article(page_bytes, f"{BASE}/a.html", options=ExtractOptions(max_bytes=cut))
    assert article is not None and "A second hull" not in article.text


def test_the_time_limit_stops_a_slow_extraction(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: object, **kwargs: object) -> None:
        time.sleep(5)

    monkeypatch.setattr(trafilatura, "bare_extraction", slow)
    started = time.monotonic()
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes()
    options = ExtractOptions(time_limit=0.2)
    assert extract_article(page_bytes, f"{BASE}/a.html", options=options) is None
    assert time.monotonic() - started < 4


def test_the_feed_text_is_used_as_is_when_extraction_is_off() -> None:
    body = choose_body(
        None,
        entry(content="<p>Whole story in the feed.</p>"),
        min_chars=0,
        reason="extract: false",
        extract=False,
    )
    assert (body.status, body.step, body.text) == (
        FALLBACK,
        STEP_FEED_CONTENT,
        "Whole story in the feed.",
    )
    summary = choose_body(
        None, entry(summary="<p>Teaser only.</p>"), min_chars=0, reason="x", extract=False
    )
    assert summary.step == STEP_FEED_SUMMARY


def test_worker_processes_take_per_page_options() -> None:
    page_bytes = (PAGES_DIR / "split-body.html").read_bytes()
    options = [ExtractOptions(), ExtractOptions(drop=("div.ad-slot + div.article-chunk",))]
    with ExtractionPool(2) as pool:
        first, second = pool.extract_many([(page_bytes, f"{BASE}/a")] * 2, options)
    assert first is not None and "Crews have trained" in first.text
    assert second is not None and "Crews have trained" not in second.text


def test_the_text_s_origin_is_visible_per_article(tmp_path: Path) -> None:
    """End to end over loopback: steps and languages are stored, shown by
    `aggregator articles --url` and published in the JSON Feed extension (issue 5)."""
    with DemoSite() as site:
        path = tmp_path / "feeds.yaml"
        text = demo_config_text(site, listen="127.0.0.1:1", database=tmp_path / "d.db")
        # Skyline Defence publishes its full text in the feed: use it, fetch no page.
        text = text.replace(
            'skyline-defence/atom.xml"\n',
            'skyline-defence/atom.xml"\n    extract: false\n    note: full text in the feed\n',
        )
        path.write_text(text)
        runner = CliRunner()
        refreshed = runner.invoke(cli, ["--config", str(path), "refresh", "--workers", "0"])
        assert refreshed.exit_code == 0, refreshed.output
        article = "harbourwatch/articles/polar-supply-vessel-frostmark-launched-brennholm.html"
        url = f"{site.base_url}/{article}"
        shown = runner.invoke(cli, ["--config", str(path), "articles", "--url", url])
        assert shown.exit_code == 0, shown.output
        assert "status:    extracted" in shown.output and "step:      precision" in shown.output
        assert "language:  en" in shown.output
        feed = json.loads(
            runner.invoke(cli, ["--config", str(path), "feed", "--format", "json"]).stdout
        )
    sources = [source for item in feed["items"] for source in item["_aggregator"]["sources"]]
    skyline = [source for source in sources if source["feed"] == "Skyline Defence"]
    assert skyline and {source["extraction"] for source in skyline} <= {
        STEP_FEED_CONTENT,
        STEP_FEED_SUMMARY,
    }
    assert {source["language"] for source in sources} == {"en"}
    missing = CliRunner().invoke(
        cli, ["--config", str(path), "articles", "--url", "http://x.test/"]
    )
    assert missing.exit_code == 1 and "no stored article" in missing.output


# --- issue 16: never worse than plain trafilatura -------------------------------------


def test_a_text_that_only_looks_short_for_the_page_beats_a_shorter_feed_text() -> None:
    # A long legal footer makes the article look short for the page; the feed item only
    # has a one-word teaser. Before issue 16 the teaser was published.
    body = golden_body("short-for-page")
    assert body.status == EXTRACTED
    assert "microwave link" in body.text and "drones crossing the coast" in body.text
    assert "too short for the page" in body.note and "feed's text is shorter" in body.note


def test_a_text_that_looks_short_gives_way_to_a_longer_feed_text() -> None:
    doubted = Article(
        text=LONG, html=f"<p>{LONG}</p>", doubt="too short for the page (680 of 9000 chars)"
    )
    chosen = choose_body(doubted, entry(content=f"<p>{LONG} {LONG}</p>"), min_chars=100)
    assert (chosen.status, chosen.step) == (FALLBACK, STEP_FEED_CONTENT)
    assert "too short for the page" in chosen.note


def test_a_wall_gives_way_even_to_a_shorter_feed_text_and_says_so() -> None:
    wall = Article(text=LONG, html=f"<p>{LONG}</p>", doubt="a paywall or cookie wall")
    chosen = choose_body(wall, entry(summary="<p>Sea trials done.</p>"), min_chars=100)
    assert (chosen.status, chosen.text) == (FALLBACK, "Sea trials done.")
    assert chosen.note.endswith(f"(16 chars against the page's {len(LONG)})")


def test_a_listicle_that_the_precision_and_recall_passes_cut_short_is_read_whole() -> None:
    # Numbered sections between ad breaks: trafilatura's own extractor stops after the
    # introduction in every mode; its fallbacks (the balanced pass) read them all.
    article = extract_article((PAGES_DIR / "listicle.html").read_bytes(), f"{BASE}/list.html")
    assert article is not None and article.step == STEP_BALANCED
    assert article.text.startswith("Air defence has moved from the bottom")
    assert "target-recovery jetty will be decided in the autumn" in article.text


def test_paragraphs_the_precision_pass_left_in_its_block_are_read() -> None:
    # The lead is in <p>, the rest of the explainer in <div>s of the same block: the
    # block holds three times what the precision pass found, so the balanced pass runs.
    url = f"{BASE}/explainers/reserve-law.html"
    article = extract_article((PAGES_DIR / "div-paragraphs.html").read_bytes(), url)
    assert article is not None and article.step == STEP_BALANCED
    assert "Parliament passed the reserve forces bill" in article.text
    assert "budget for the next five years" in article.text
    assert "Most read" not in article.text and "every Friday" not in article.text


def test_blocks_of_the_article_s_class_in_the_page_s_chrome_are_not_put_back() -> None:
    # A page builder gives every text widget one class: the author's panel (an aside),
    # a list of other stories (another kind of column) and a subscription notice share
    # it with the article's two halves.
    page_bytes = (PAGES_DIR / "split-chrome.html").read_bytes()
    article = extract_article(page_bytes, f"{BASE}/army/depot-fire.html")
    assert article is not None
    assert article.text.endswith("tyres and fuel tanks rather than ammunition.")
    assert "defence correspondent" not in article.text
    assert "More from the army desk" not in article.text
    assert "Subscribe to the Western Sentinel" not in article.text


def _pass(text: str, step: str = STEP_PRECISION) -> extractor._Pass:
    return extractor._Pass(step, text, None)


def test_a_recall_pass_is_kept_only_when_it_adds_enough_that_is_not_repeated() -> None:
    kept = _pass("Para one of the report.\nPara two of the report.")
    longer = _pass(kept.text + "\nA third paragraph the precision pass dropped.", STEP_RECALL)
    assert extractor._prefer_recall(kept, longer).chosen is longer
    slightly = _pass(kept.text + "\nMore.", STEP_RECALL)
    choice = extractor._prefer_recall(kept, slightly)
    assert choice.chosen is kept and "too little more" in choice.note
    caption = "The minister, left, and the admiral on the quay at Saltmere on Monday."
    gallery = _pass("\n".join([kept.text, caption, "Photo: navy", caption, caption]), STEP_RECALL)
    choice = extractor._prefer_recall(kept, gallery)
    assert choice.chosen is kept and "repeated lines" in choice.note


def test_the_reason_a_longer_text_was_left_out_is_shown_per_article(tmp_path: Path) -> None:
    """End to end over loopback: the feed item's teaser is shorter than the page's text,
    which looks short for the page; the page's text is stored, and why (issue 16)."""
    with DemoSite() as site:
        story = f"{site.base_url}/northern/radar-station.html"
        site.overrides["/northern/radar-station.html"] = (
            PAGES_DIR / "short-for-page.html"
        ).read_bytes()
        site.overrides["/northern/feed.xml"] = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Northern Watch</title>'
            f"<link>{site.base_url}/northern/</link><description>News</description>"
            "<item><title>Coastal radar chain gets its fourth station</title>"
            f"<link>{story}</link><guid>radar-4</guid><description>Radar</description>"
            "<pubDate>Thu, 03 Dec 2026 09:00:00 GMT</pubDate></item></channel></rss>"
        ).encode()
        path = tmp_path / "feeds.yaml"
        text = demo_config_text(site, listen="127.0.0.1:1", database=tmp_path / "d.db")
        path.write_text(
            text + f'  - name: Northern Watch\n    url: "{site.base_url}/northern/feed.xml"\n'
        )
        runner = CliRunner()
        refreshed = runner.invoke(cli, ["--config", str(path), "refresh", "--workers", "0"])
        assert refreshed.exit_code == 0, refreshed.output
        shown = runner.invoke(cli, ["--config", str(path), "articles", "--url", story])
    assert shown.exit_code == 0, shown.output
    assert "status:    extracted" in shown.output and "step:      balanced" in shown.output
    assert "too short for the page" in shown.output
    assert "kept it: the feed's text is shorter (5 chars)" in shown.output


BYLINE_PAGES = {
    # the specific rules win over earlier generic ones; comments are skipped
    "specific": (
        '<div class="post-author">Desk</div><div id="comments"><a rel="author">Troll Nine</a>'
        '</div><article><p>Text</p><span class="author-name">Ines Harrow</span></article>',
        "Ines Harrow",
    ),
    # a date inside the byline is not part of the name
    "dated": (
        '<p class="byline">Mark Ostrand<time>4 Dec 2026</time></p><p>The corvette sailed.</p>',
        "Mark Ostrand",
    ),
    "none": ("<p>No byline on this page at all.</p>", None),
    # issue 18: the elements are found by one query on the page's class and id values
    "one class of several": (
        '<div class="post-meta entry-author small"><span>Rhea Tallis</span></div><p>Text</p>',
        "Rhea Tallis",
    ),
    "an id": ('<p>Text</p><div id="main-author-box">Corin Vale</div>', "Corin Vale"),
    "an attribute": ('<p>Text</p><span itemprop="author">Dana Kell</span>', "Dana Kell"),
    "a tag": ("<p>Text</p><author>Olek Brandt</author>", "Olek Brandt"),
    "in a comment thread": (
        '<div class="comments-area"><span class="byline">Troll Nine</span></div>'
        '<p>Text</p><p class="byline">Yara Finch</p>',
        "Yara Finch",
    ),
}


@pytest.mark.parametrize("name", sorted(BYLINE_PAGES))
def test_the_byline_search_finds_what_trafilatura_s_own_finds(name: str) -> None:
    html, expected = BYLINE_PAGES[name]
    tree = load_html(f"<html><body>{html}</body></html>")
    assert find_author(tree) == extract_author(tree) == expected


def test_the_byline_search_reads_class_names_with_control_characters() -> None:
    # issue 18: lxml will not pass such a name into a query; the search walks the page
    page = '<p class="x\x0by">Text</p><p class="by\x0bauthor">Lise Arno</p>'
    tree = lxml.html.fromstring(f"<html><body>{page}</body></html>")
    assert find_author(tree) == "Lise Arno"


LOADED_PAGES: dict[str, bytes | str] = {
    "a page": "<html><head><title>Trials</title></head><body><p>Hull 3 sails.</p></body></html>",
    "bytes, another charset": '<html><head><meta charset="iso-8859-1"></head>'
    "<body><p>Kj\xf8l laid at Brennholm.</p></body></html>".encode("latin-1"),
    "an XML declaration": '<?xml version="1.0" encoding="utf-8"?>\n<html><body><p>Refit '
    "done.</p></body></html>",
    "a self-closing html": "<!DOCTYPE html>\n<html/>\n<body><p>Drydock two.</p></body>",
    "not a page": "just a line of text",
    "a fragment": "<p>One paragraph, no page around it.</p>",
    "nothing": "",
}


@pytest.mark.parametrize("name", sorted(LOADED_PAGES))
def test_pages_load_as_trafilatura_loads_them(name: str) -> None:
    # load_page (a parser without lxml.html's per-element Python class lookup) must read
    # every page as trafilatura's load_html does: same tree, same refusals
    page = LOADED_PAGES[name]
    ours, theirs = load_page(page), load_html(page)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert lxml.html.tostring(ours) == lxml.html.tostring(theirs)
        assert all(isinstance(element, lxml.html.HtmlElement) for element in ours.iter())
