"""Extraction on the sample outlets' pages (messy, with navigation, cookie banners,
"Check Also" boxes, comment forms and share bars), and the fallback rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.demo import SITE_DIR
from aggregator.extractor import (
    EXTRACTED,
    FAILED,
    FALLBACK,
    ExtractionPool,
    choose_body,
    extract_article,
    html_to_text,
)
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
