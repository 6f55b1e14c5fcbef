"""Documentation keeps up with the code: every setting, feed key and command is in the
README, and the shipped feeds.yaml shows every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import cli
from aggregator.config import (
    CLUSTERING_HELP,
    FEED_KEYS_HELP,
    SETTINGS_HELP,
    ClusteringSettings,
    FeedSource,
    Settings,
)

README = Path("README.md").read_text()
FEEDS_YAML = Path("config/feeds.yaml").read_text()


def test_settings_help_matches_the_settings_model() -> None:
    assert set(SETTINGS_HELP) == set(Settings.model_fields)
    assert set(FEED_KEYS_HELP) == set(FeedSource.model_fields)


@pytest.mark.parametrize("key", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_and_the_shipped_config(key: str) -> None:
    assert f"| `{key}` |" in README
    assert f"{key}:" in FEEDS_YAML


@pytest.mark.parametrize("key", sorted(FeedSource.model_fields))
def test_every_feed_key_is_in_the_readme(key: str) -> None:
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"| `{command}" in README


def test_readme_quick_start_is_two_commands_that_exist() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["scripts/run", "scripts/test"]
    for command in commands:
        assert Path(command).stat().st_mode & 0o111


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in Path(".ci/run").read_text()


@pytest.mark.parametrize("key", sorted(ClusteringSettings.model_fields))
def test_every_clustering_setting_is_documented(key: str) -> None:
    assert set(CLUSTERING_HELP) == set(ClusteringSettings.model_fields)
    assert f"| `{key}` |" in README
    assert f"{key}:" in FEEDS_YAML
