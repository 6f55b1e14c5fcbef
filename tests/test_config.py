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


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "# nothing here yet\n"))
    assert config.feeds == ()
    assert config.settings.listen == "127.0.0.1:8080"
    assert config.settings.refresh_interval == timedelta(minutes=30)


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
        config.settings.listen = "127.0.0.1:1"  # type: ignore[misc]


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


def test_a_retired_clustering_key_still_loads_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # issue 15: lead_threshold no longer does anything; configs that set it must load
    settings = Settings.model_validate({"clustering": {"lead_threshold": 0.3}})
    assert settings.clustering.lead_threshold == 0.3
    assert "lead_threshold is no longer used" in caplog.text
