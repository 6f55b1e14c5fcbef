"""Documentation keeps up with the code: every setting, feed key and command is in the
README, and the shipped feeds.yaml shows every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import cli
from aggregator.cli.stories import stories
from aggregator.config import ClusteringSettings, FeedSource, OutputSlice, Settings
from aggregator.config_help import (
    CLUSTERING_HELP,
    FEED_KEYS_HELP,
    OUTPUT_KEYS_HELP,
    SETTINGS_HELP,
)

README = Path("README.md").read_text()
FEEDS_YAML = Path("config/feeds.yaml").read_text()


def test_settings_help_matches_the_settings_model() -> None:
    assert set(SETTINGS_HELP) == set(Settings.model_fields)
    assert set(FEED_KEYS_HELP) == set(FeedSource.model_fields)
    assert set(OUTPUT_KEYS_HELP) == set(OutputSlice.model_fields)


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


@pytest.mark.parametrize("subcommand", sorted(stories.commands))
def test_every_stories_subcommand_is_in_the_readme(subcommand: str) -> None:
    assert f"| `stories {subcommand}" in README


def outputs_table() -> str:
    """The README's table of `outputs:` keys (after the section's YAML example)."""
    section = README.split("### Named slices: `outputs`", 1)[1].split("\n### ", 1)[0]
    return section.split("| key | meaning |", 1)[1]


@pytest.mark.parametrize("key", sorted(OutputSlice.model_fields))
def test_every_output_key_is_in_the_readme_as_its_help_says(key: str) -> None:
    assert f"| `{key}` | {OUTPUT_KEYS_HELP[key]} |" in outputs_table()


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
