"""Tests for aggregator.config: feeds.yaml in, frozen typed objects out, or a ConfigError
that names the file, the line and the field of the first mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import (
    CONFIG_ENV_VAR,
    DATABASE_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    LISTEN_ENV_VAR,
    MAX_CONFIG_BYTES,
    Config,
    Settings,
    load_config,
    resolve_config_path,
)
from aggregator.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

VALID = """\
settings:
  database: state/news.db
  listen: 0.0.0.0:9090
  refresh_interval: 15m
  timeout: 90s
  duplicate_window: 2d
feeds:
  - name: Harbour & Hangar Weekly
    url: https://harbour-hangar.example/feed/
    tags: [naval, industry]
    interval: 2h
  - url: https://skyline-airpower.example/feed.atom
    tags: air
  - name: Retired Gazette
    url: https://retired-gazette.example/rss
    enabled: false
"""


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The config reads a few env vars; a developer's shell must not leak into tests."""
    for name in (CONFIG_ENV_VAR, DATABASE_ENV_VAR, LISTEN_ENV_VAR):
        monkeypatch.delenv(name, raising=False)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path, VALID))


# -- a valid file -------------------------------------------------------------------


def test_durations_are_timedeltas(config: Config) -> None:
    assert config.settings.refresh_interval == timedelta(minutes=15)
    assert config.settings.timeout == timedelta(seconds=90)
    assert config.settings.duplicate_window == timedelta(days=2)
    assert config.feeds[0].interval == timedelta(hours=2)


def test_feed_fields_and_defaults(config: Config) -> None:
    first, second, third = config.feeds
    assert first.name == "Harbour & Hangar Weekly"
    assert first.tags == ("naval", "industry")
    assert second.name == ""
    assert second.display_name == "https://skyline-airpower.example/feed.atom"
    assert second.tags == ("air",)  # a single tag may be written without a list
    assert second.interval is None
    assert second.enabled is True
    assert third.enabled is False


def test_feed_interval_falls_back_to_refresh_interval(config: Config) -> None:
    assert config.interval_for(config.feeds[0]) == timedelta(hours=2)
    assert config.interval_for(config.feeds[1]) == timedelta(minutes=15)


def test_enabled_feeds_leave_out_disabled_ones(config: Config) -> None:
    assert [feed.url for feed in config.enabled_feeds] == [
        "https://harbour-hangar.example/feed/",
        "https://skyline-airpower.example/feed.atom",
    ]


def test_unset_settings_keep_their_defaults(config: Config) -> None:
    assert config.settings.feed_limit == 50
    assert config.settings.duplicate_threshold == 0.5
    assert config.settings.output_dir is None
    assert config.output_directory is None


def test_an_explicit_empty_feeds_list_is_all_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "# nothing here yet\nfeeds: []\n"))
    assert config.feeds == ()
    assert config.settings.listen == "127.0.0.1:8080"
    assert config.settings.refresh_interval == timedelta(minutes=30)


NO_FEEDS = {
    "empty": ("", 1, "feeds: missing"),
    "comments-only": ("# all my feeds\n# were here\n", 1, "feeds: missing"),
    "truncated-after-settings": ("settings:\n  refresh_interval: 30m\n", 1, "feeds: missing"),
    "feeds-key-without-a-list": ("settings: {}\nfeeds:\n# - url: gone\n", 2, "feeds: is empty"),
}


@pytest.mark.parametrize(("text", "line", "message"), NO_FEEDS.values(), ids=NO_FEEDS.keys())
def test_a_file_without_feeds_is_refused(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    """Issue 19: a truncated or comments-only file used to stop every feed silently."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}: {message}: list the feeds")
    assert "feeds: []" in str(caught.value)


def test_a_config_past_the_size_cap_is_refused_unparsed(tmp_path: Path) -> None:
    """Issue 19: 50 MB of comments kept the reload thread busy for minutes."""
    comment = "# " + "x" * 77 + "\n"
    text = "feeds: []\n" + comment * (MAX_CONFIG_BYTES // len(comment) + 1)
    with pytest.raises(ConfigError, match="config is larger than 2 MiB; refused"):
        load_config(write_config(tmp_path, text))
    just_under = "feeds: []\n" + comment * ((MAX_CONFIG_BYTES - 20) // len(comment))
    assert load_config(write_config(tmp_path, just_under)).feeds == ()


def test_database_path_is_relative_to_the_config_file(config: Config, tmp_path: Path) -> None:
    assert config.database_path == (tmp_path / "state" / "news.db").resolve()


def test_env_overrides_database_and_listen(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config.settings.listen_host == "0.0.0.0"
    assert config.settings.listen_port == 9090
    monkeypatch.setenv(DATABASE_ENV_VAR, str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv(LISTEN_ENV_VAR, "[::1]:8181")
    assert config.database_path == tmp_path / "elsewhere.db"
    assert config.settings.effective_listen == "[::1]:8181"
    assert config.settings.listen_host == "::1"
    assert config.settings.listen_port == 8181


def test_config_is_frozen(config: Config) -> None:
    with pytest.raises(ValueError, match="frozen"):
        config.settings.listen = "127.0.0.1:1"


def test_shipped_feeds_yaml_loads() -> None:
    config = load_config(REPO / "config" / "feeds.yaml")
    enabled = config.enabled_feeds
    assert len(enabled) >= 15
    for feed in enabled:
        assert feed.name, feed.url
        assert feed.url.startswith("https://"), feed.url
        assert feed.tags, feed.url


# -- invalid files: file, line and field are named ------------------------------------

INVALID = {
    "tab-indent": (
        "settings:\n  listen: 127.0.0.1:8080\nfeeds:\n\t- url: https://a.example/feed\n",
        4,
        "invalid YAML",
    ),
    "bad-indent": (
        "settings:\n  listen: 127.0.0.1:8080\n   timeout: 5s\nfeeds: []\n",
        3,
        "invalid YAML",
    ),
    "unknown-setting": (
        "settings:\n  listen: 127.0.0.1:8080\n  refresh_intervall: 5m\nfeeds: []\n",
        3,
        "settings.refresh_intervall: unknown key",
    ),
    "unknown-feed-key": (
        "feeds:\n  - url: https://a.example/feed\n  - name: B\n"
        "    url: https://b.example/feed\n    tag: [x]\n",
        5,
        "feeds[1] (B).tag: unknown key",
    ),
    "interval-in-words": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    interval: 5 minutes\n",
        4,
        "feeds[0] (A).interval: expected a duration",
    ),
    "enabled-maybe": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    enabled: maybe\n",
        4,
        "feeds[0] (A).enabled: Input should be a valid boolean",
    ),
    "missing-url": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n  - name: B\n    tags: [x]\n",
        4,
        "feeds[1] (B).url: Field required",
    ),
    "ftp-url": (
        "feeds:\n  - name: A\n    url: ftp://a.example/feed\n",
        3,
        "feeds[0] (A).url: expected an http:// or https:// URL",
    ),
    "duplicate-url": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n"
        "  - name: B\n    url: https://a.example/feed\n",
        5,
        "feeds[1].url: duplicate of feeds[0]",
    ),
    "listen-without-port": (
        "settings:\n  listen: localhost\nfeeds: []\n",
        2,
        "settings.listen: expected host:port",
    ),
    "listen-port-out-of-range": (
        "settings:\n  listen: localhost:99999\nfeeds: []\n",
        2,
        "settings.listen: expected host:port",
    ),
    "top-level-list": ("- a\n- b\n", 1, "top level must be a mapping"),
    # Issue 17: edits that passed check-config and bit later.
    "same-name-twice-in-other-case": (
        "feeds:\n  - name: Naval News\n    url: https://a.example/feed\n"
        "  - name: naval news\n    url: https://b.example/feed\n",
        4,
        "feeds[1] (naval news).name: 'naval news' is already the name of feeds[0]",
    ),
    "feed-beside-feed-slash": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n"
        "  - name: B\n    url: https://A.example:443/feed/\n",
        5,
        "feeds[1].url: duplicate of feeds[0] (https://a.example/feed)",
    ),
    "space-in-host": (
        "feeds:\n  - name: A\n    url: https://naval news.example/feed\n",
        3,
        "feeds[0] (A).url: a space in the host ('naval news.example')",
    ),
    "space-in-path": (
        "feeds:\n  - name: A\n    url: https://a.example/my feed.xml\n",
        3,
        "feeds[0] (A).url: a space in the URL; write it as %20",
    ),
    "port-not-a-number": (
        "feeds:\n  - name: A\n    url: https://a.example:80a/feed\n",
        3,
        "feeds[0] (A).url: invalid port",
    ),
    "empty-tag": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    tags: [naval, '']\n",
        4,
        "feeds[0] (A).tags: empty tag ('')",
    ),
    "tags-differing-by-case": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    tags: [Naval]\n"
        "  - name: B\n    url: https://b.example/feed\n    tags: [air, naval]\n",
        7,
        "feeds[1] (B).tags: 'naval' differs from 'Naval' (feeds[0]) only by case",
    ),
    # Issue 19: only a `?` or a fragment added made a second feed of the same URL.
    "same-url-with-a-lone-question-mark": (
        "feeds:\n  - url: https://a.example/rss\n  - url: https://a.example/rss?\n",
        3,
        "feeds[1].url: duplicate of feeds[0] (https://a.example/rss)",
    ),
    "same-url-with-a-fragment": (
        "feeds:\n  - url: https://a.example/rss?cat=2\n  - url: https://a.example/rss?cat=2#top\n",
        3,
        "feeds[1].url: duplicate of feeds[0]",
    ),
    # Issue 17: a bare number in a duration used to mean minutes; now it is refused.
    "bare-timeout": (
        "settings:\n  timeout: 30\nfeeds: []\n",
        2,
        "settings.timeout: write 30s, 15m or 2h",
    ),
    "bare-feed-interval": (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    interval: 60\n",
        4,
        "feeds[0] (A).interval: write 30s, 15m or 2h",
    ),
    "bare-quoted-refresh-interval": (
        "settings:\n  refresh_interval: '45'\nfeeds: []\n",
        2,
        "settings.refresh_interval: write 30s, 15m or 2h",
    ),
    "bare-float-window": (
        "settings:\n  clustering:\n    window: 1.5\nfeeds: []\n",
        3,
        "settings.clustering.window: write 30s, 15m or 2h",
    ),
    "bare-refine-every": (
        "settings:\n  clustering:\n    refine_every: 10\nfeeds: []\n",
        3,
        "settings.clustering.refine_every: write 30s, 15m or 2h",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_config_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert str(error).startswith(f"{path}:{line}: ")
    assert message in str(error)
    assert error.path == str(path)
    assert error.line == line


def test_comma_separated_tags_are_several_tags(tmp_path: Path) -> None:
    """Issue 17: `tags: naval, uk` was one tag that no ?tag= filter could select."""
    text = (
        "feeds:\n  - name: A\n    url: https://a.example/feed\n    tags: naval, uk\n"
        "  - name: B\n    url: https://b.example/feed\n    tags: [' naval ', 'air,uk,', naval]\n"
    )
    feeds = load_config(write_config(tmp_path, text)).feeds
    assert [feed.tags for feed in feeds] == [("naval", "uk"), ("naval", "air", "uk")]


def test_different_queries_are_different_feeds(tmp_path: Path) -> None:
    text = "feeds:\n  - url: https://a.example/rss?cat=2\n  - url: https://a.example/rss?cat=3\n"
    assert len(load_config(write_config(tmp_path, text)).feeds) == 2


def test_refine_every_takes_a_duration_and_zero(tmp_path: Path) -> None:
    assert Settings().clustering.refine_every == timedelta(minutes=10)
    for written, expected in [("2h", timedelta(hours=2)), ("0s", timedelta(0))]:
        text = f"settings:\n  clustering:\n    refine_every: {written}\nfeeds: []\n"
        settings = load_config(write_config(tmp_path, text)).settings
        assert settings.clustering.refine_every == expected


def test_integer_second_and_day_keys_stay_plain_numbers(tmp_path: Path) -> None:
    """Keys that name their unit are not durations: they keep taking a bare number."""
    text = "settings:\n  cache_max_age: 300\n  retention_days: 30\nfeeds: []\n"
    settings = load_config(write_config(tmp_path, text)).settings
    assert (settings.cache_max_age, settings.retention_days) == (300, 30)


def test_every_duration_key_refuses_a_bare_number(tmp_path: Path) -> None:
    keys = ["refresh_interval", "timeout", "duplicate_window", "max_backoff"]
    keys += ["extract_time_limit"]
    for key in keys:
        with pytest.raises(ConfigError, match=f":2: settings.{key}: write 30s, 15m or 2h"):
            load_config(write_config(tmp_path, f"settings:\n  {key}: 10\nfeeds: []\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


# -- where the config file is looked for -------------------------------------------


def test_resolve_config_path_prefers_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, "/etc/aggregator/env.yaml")
    assert resolve_config_path("/srv/option.yaml") == Path("/srv/option.yaml")


def test_resolve_config_path_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, "/etc/aggregator/env.yaml")
    assert resolve_config_path(None) == Path("/etc/aggregator/env.yaml")


def test_resolve_config_path_then_the_default() -> None:
    assert resolve_config_path(None) == DEFAULT_CONFIG_PATH == Path("config/feeds.yaml")


def test_a_retired_clustering_key_still_loads_with_a_warning(tmp_path: Path) -> None:
    # issue 15: lead_threshold no longer does anything; configs that set it must load,
    # and check-config (like run and refresh) says it can go
    from aggregator.cli.common import config_warnings

    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  clustering:\n    lead_threshold: 0.3\nfeeds: []\n")
    config = load_config(path)
    assert config.settings.clustering.lead_threshold == 0.3
    assert any("clustering.lead_threshold: no longer used" in w for w in config_warnings(config))
    path.write_text("feeds: []\n")
    assert not any("lead_threshold" in w for w in config_warnings(load_config(path)))
