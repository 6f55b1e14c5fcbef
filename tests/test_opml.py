"""OPML (issue 6): /sources.opml's renderer, the OPML reader, and `import-opml`
editing feeds.yaml without losing its comments or order."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.config import FeedSource, load_config
from aggregator.errors import OPMLError
from aggregator.publish.opml import (
    DroppedFeed,
    OPMLFeed,
    add_feeds_to_yaml,
    parse_opml,
    read_opml,
    render_opml,
)

# An export as readers write them: folders, a feed at top level, a duplicate with
# tracking parameters, a non-http feed, a folder-less category and odd whitespace.
READER_EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="Naval" title="Naval">
      <outline type="rss" text="Harbour Watch" title="Harbour  Watch
      " xmlUrl="https://harbour.example/feed/" htmlUrl="https://harbour.example/"/>
      <outline type="rss" text="Again" xmlUrl="https://harbour.example/feed/?utm_source=x"/>
    </outline>
    <outline text="Air">
      <outline text="Europe">
        <outline type="rss" text="Skyline" xmlUrl="https://sky.example/rss"
                 category="/tech/drones"/>
      </outline>
    </outline>
    <outline type="rss" text="Loose" xmlUrl="http://loose.example/atom"/>
    <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
    <outline type="rss" text="Scripted" xmlUrl="javascript:alert(1)"/>
  </body>
</opml>
"""

FEEDS_YAML = """\
# My feeds. Keep this comment.
settings:
  feed_limit: 20   # a trailing comment

feeds:
  # The first outlet.
  - name: Skyline
    url: https://sky.example/rss
    tags: [air]

  - name: Wire
    url: https://wire.example/feed   # wire copy
"""


def test_parse_takes_feeds_folders_as_tags_and_each_url_once() -> None:
    assert parse_opml(READER_EXPORT) == [
        OPMLFeed("https://harbour.example/feed/", "Harbour Watch", ("Naval",)),
        OPMLFeed("https://sky.example/rss", "Skyline", ("Air", "Europe", "drones")),
        OPMLFeed("http://loose.example/atom", "Loose", ()),
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body/></opml>', "DTD"),
        (b"<opml><body><outline", "well-formed"),
        (b"<rss><channel/></rss>", "not an OPML"),
        (b"<opml>" + b" " * 5_000_001 + b"</opml>", "larger"),
    ],
)
def test_unsafe_or_broken_files_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(OPMLError, match=problem):
        parse_opml(data)


def test_render_round_trips_through_the_parser() -> None:
    feeds = [
        FeedSource(url="https://a.example/feed", name="A & B <news>", tags=("naval", "uk")),
        FeedSource(url="https://c.example/rss", enabled=False),
    ]
    data = render_opml(feeds, "Defence news: sources")
    assert b'isDisabled="true"' in data
    assert parse_opml(data) == [
        OPMLFeed("https://a.example/feed", "A & B <news>", ("naval", "uk")),
        OPMLFeed("https://c.example/rss", "https://c.example/rss", ()),
    ]


def test_yaml_edit_keeps_comments_order_and_skips_present_feeds() -> None:
    edit = add_feeds_to_yaml(FEEDS_YAML, parse_opml(READER_EXPORT))
    assert [feed.name for feed in edit.added] == ["Harbour Watch", "Loose"]
    assert [feed.name for feed in edit.skipped] == ["Skyline"]
    assert edit.text.startswith(FEEDS_YAML)  # everything before is untouched, byte for byte
    assert edit.text[len(FEEDS_YAML) :] == (
        "  - name: Harbour Watch\n"
        "    url: https://harbour.example/feed/\n"
        "    tags: [Naval]\n"
        "  - name: Loose\n"
        "    url: http://loose.example/atom\n"
    )


def test_yaml_edit_creates_the_feeds_list_when_missing() -> None:
    edit = add_feeds_to_yaml("settings:\n  feed_limit: 5\n", [OPMLFeed("https://x.example/", "X")])
    assert edit.text == "settings:\n  feed_limit: 5\nfeeds:\n- name: X\n  url: https://x.example/\n"


def test_import_opml_command_edits_feeds_yaml(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(FEEDS_YAML)
    export = tmp_path / "export.opml"
    export.write_bytes(READER_EXPORT)
    runner = CliRunner()

    dry = runner.invoke(cli, ["--config", str(config), "import-opml", str(export), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would add: Harbour Watch" in dry.output
    assert config.read_text() == FEEDS_YAML

    result = runner.invoke(cli, ["--config", str(config), "import-opml", str(export)])
    assert result.exit_code == 0, result.output
    assert "2 added, 1 already present" in result.output
    assert [feed.name for feed in load_config(config).feeds] == [
        "Skyline", "Wire", "Harbour Watch", "Loose",
    ]  # fmt: skip
    assert "# The first outlet." in config.read_text()

    again = runner.invoke(cli, ["--config", str(config), "import-opml", str(export)])
    assert "0 added, 3 already present" in again.output


def test_each_dropped_subscription_is_reported_with_why(tmp_path: Path) -> None:
    """Issue 17: import-opml dropped a bad xmlUrl without a word."""
    export = READER_EXPORT.replace(
        b"</body>",
        b'<outline type="rss" text="Spaced" xmlUrl="https://spaced host.example/rss"/>'
        b'<outline type="rss" text="Blank" xmlUrl=""/></body>',
    )
    feeds, dropped = read_opml(export)
    assert [feed.name for feed in feeds] == ["Harbour Watch", "Skyline", "Loose"]
    assert [(d.name, d.url) for d in dropped] == [
        ("Local file", "file:///etc/passwd"),
        ("Scripted", "javascript:alert(1)"),
        ("Spaced", "https://spaced host.example/rss"),
        ("Blank", ""),
    ]
    assert dropped[2] == DroppedFeed(
        "https://spaced host.example/rss", "Spaced", "a space in the host ('spaced host.example')"
    )
    config = tmp_path / "feeds.yaml"
    config.write_text(FEEDS_YAML)
    (tmp_path / "export.opml").write_bytes(export)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "import-opml", str(tmp_path / "export.opml")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "dropped: Local file (file:///etc/passwd): expected an http:// or https://" in result.output
    )
    assert "dropped: Blank: no feed URL (empty xmlUrl)" in result.output
    assert "2 added, 1 already present, 4 dropped" in result.output


def test_a_feed_outline_without_xmlurl_is_reported(tmp_path: Path) -> None:
    """An outline typed as a feed but with no xmlUrl was taken for an empty folder and
    skipped without a word; a real folder (children, or no type) is still a folder."""
    export = READER_EXPORT.replace(
        b"</body>",
        b'<outline type="rss" text="Quay Notes"/>'
        b'<outline type="RSS" title="Dock Gazette" htmlUrl="https://dock.example/"/>'
        b'<outline type="rss" text="Typed folder"><outline type="rss" text="Inner"'
        b' xmlUrl="https://inner.example/rss"/></outline>'
        b'<outline text="Empty folder"/></body>',
    )
    feeds, dropped = read_opml(export)
    assert [feed.name for feed in feeds][-1] == "Inner"
    assert [(d.name, d.url, d.reason) for d in dropped][2:] == [
        ("Quay Notes", "", "no xmlUrl"),
        ("Dock Gazette", "", "no xmlUrl (its site: https://dock.example/)"),
    ]
    config = tmp_path / "feeds.yaml"
    config.write_text(FEEDS_YAML)
    (tmp_path / "export.opml").write_bytes(export)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "import-opml", str(tmp_path / "export.opml")]
    )
    assert result.exit_code == 0, result.output
    assert "dropped: Quay Notes: no xmlUrl\n" in result.output
    assert "dropped: Dock Gazette: no xmlUrl (its site: https://dock.example/)" in result.output
    assert "3 added, 1 already present, 4 dropped" in result.output


def test_what_import_adds_passes_check_config(tmp_path: Path) -> None:
    """Issue 17: a trailing slash, a taken name or another spelling of a tag in an
    export would have been refused by check-config (or made a second feed)."""
    export = b"""<opml version="2.0"><body>
      <outline text="NAVAL">
        <outline text="Wire" xmlUrl="https://wire.example/feed/"/>
        <outline text="Skyline" xmlUrl="https://skyline.example/atom"/>
        <outline text="Skyline" xmlUrl="https://skyline-two.example/atom" category="Air,uk"/>
      </outline>
    </body></opml>"""
    edit = add_feeds_to_yaml(FEEDS_YAML + "    tags: [naval]\n", parse_opml(export))
    assert [feed.url for feed in edit.skipped] == ["https://wire.example/feed/"]
    assert [(feed.name, feed.tags) for feed in edit.added] == [
        ("Skyline (skyline.example)", ("naval",)),
        ("Skyline (skyline-two.example)", ("naval", "air", "uk")),
    ]
    config = tmp_path / "feeds.yaml"
    config.write_text(edit.text)
    assert len(load_config(config).feeds) == 4


def test_import_opml_refuses_a_bad_file_and_leaves_feeds_yaml_alone(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(FEEDS_YAML)
    export = tmp_path / "bad.opml"
    export.write_bytes(b"<!DOCTYPE opml><opml/>")
    result = CliRunner().invoke(cli, ["--config", str(config), "import-opml", str(export)])
    assert result.exit_code == 1 and "DTD" in result.output
    assert config.read_text() == FEEDS_YAML
    assert sorted(tmp_path.iterdir()) == sorted([config, export])  # no temporary left
