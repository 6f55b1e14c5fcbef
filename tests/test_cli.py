"""The `aggregator` command, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from aggregator.demo import DemoSite, demo_config_text
from aggregator.storage import Storage


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_config_accepts_the_shipped_file(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--config", "config/feeds.yaml", "check-config"])
    assert result.exit_code == 0
    assert "OK" in result.output


def test_check_config_names_file_line_and_field(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n  - name: Naval\n    url: https://naval.test/feed\n    interval: soon\n"
    )
    result = runner.invoke(cli, ["--config", str(path), "check-config"])
    assert result.exit_code == 1
    assert f"{path}:4: feeds[0] (Naval).interval" in result.output


def test_config_path_comes_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("feeds: []\n")
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(path))
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 0 and str(path) in result.output


def test_missing_config_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["--config", str(tmp_path / "nope.yaml"), "refresh"])
    assert result.exit_code == 1 and "cannot read config" in result.output


def test_unusable_database_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    path = tmp_path / "feeds.yaml"
    path.write_text(f"settings:\n  database: {tmp_path}/blocker/db.sqlite\nfeeds: []\n")
    result = runner.invoke(cli, ["--config", str(path), "refresh"])
    assert result.exit_code == 1 and "cannot open database" in result.output


def test_refresh_feed_feeds_and_migrate(runner: CliRunner, tmp_path: Path) -> None:
    with DemoSite() as site:
        path = tmp_path / "feeds.yaml"
        path.write_text(demo_config_text(site, listen="127.0.0.1:1", database=tmp_path / "d.db"))
        path.write_text(
            path.read_text() + '  - name: Gone\n    url: "' + site.base_url + '/gone.xml"\n'
        )
        refreshed = runner.invoke(cli, ["--config", str(path), "refresh", "--workers", "0"])
        assert refreshed.exit_code == 0, refreshed.output
        assert "5 feeds refreshed: 19 new articles, 0 not modified, 1 failed" in refreshed.output
        assert "failed: Gone" in refreshed.output and "404" in refreshed.output

    exported = runner.invoke(
        cli, ["--config", str(path), "feed", "--format", "json", "--limit", "2"]
    )
    assert exported.exit_code == 0
    assert len(json.loads(exported.stdout)["items"]) == 2

    table = runner.invoke(cli, ["--config", str(path), "feeds"])
    assert table.exit_code == 0
    assert "Harbour Watch" in table.output and "failing" in table.output

    migrated = runner.invoke(cli, ["--config", str(path), "migrate"])
    assert migrated.exit_code == 0 and "up to date" in migrated.output


def test_every_command_has_help(runner: CliRunner) -> None:
    for command in cli.list_commands(None):  # type: ignore[arg-type]
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_stories_list_explain_split_and_merge(runner: CliRunner, tmp_path: Path) -> None:
    # Issue 4: explain output, and the admin's split and merge.
    with DemoSite() as site:
        path = tmp_path / "feeds.yaml"
        path.write_text(demo_config_text(site, listen="127.0.0.1:1", database=tmp_path / "d.db"))
        assert (
            runner.invoke(cli, ["--config", str(path), "refresh", "--workers", "0"]).exit_code == 0
        )
        listed = runner.invoke(cli, ["--config", str(path), "stories", "--limit", "100"])
        assert listed.exit_code == 0
        line = next(row for row in listed.output.splitlines() if "coastal patrol ship" in row)
        story_id = line.split()[0]
        explained = runner.invoke(cli, ["--config", str(path), "stories", "--explain", story_id])
        assert explained.exit_code == 0
        assert "[lead] Carrow Wire Service" in explained.output
        assert "near-duplicate body of article" in explained.output
        copy_url = (
            f"{site.base_url}/frontier-post/story/"
            "20261121-third-patrol-ship-joins-coastal-squadron.html"
        )
        split = runner.invoke(cli, ["--config", str(path), "stories", "split", copy_url])
        assert split.exit_code == 0, split.output
        new_id = split.output.split()[-1]
        merged = runner.invoke(cli, ["--config", str(path), "stories", "merge", story_id, new_id])
        assert merged.exit_code == 0 and "into" in merged.output
        redirected = runner.invoke(cli, ["--config", str(path), "stories", "--explain", new_id])
        assert "was merged into" in redirected.output or story_id in redirected.output
        missing = runner.invoke(cli, ["--config", str(path), "stories", "merge", story_id, "nope"])
        assert missing.exit_code == 1 and "no story has the id nope" in missing.output


def test_the_bench_times_the_real_refresh_command(tmp_path: Path) -> None:
    # bench/timed_refresh.py wraps pipeline functions by their names: a rename in the
    # pipeline must fail here, not minutes into `python -m bench`.
    import subprocess
    import sys

    from bench.timed_refresh import PREFIX

    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  database: db.sqlite\nfeeds: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench.timed_refresh", "--config", str(config), "refresh"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)][-1]
    timings = json.loads(line[len(PREFIX) :])
    assert timings["store"] == [] and len(timings["refine"]) == 1 and timings["write"]


def test_the_bench_ablation_stores_copies_as_stories_of_their_own(storage: Storage) -> None:
    # `python -m bench --ablate grouping` measures the grouping's cost by leaving it
    # out: two copies of one page, which the grouping puts in one story, stay apart.
    from aggregator.config import Settings
    from aggregator.pipeline.stories import add_article_to_story
    from bench.timed_refresh import stored_alone
    from tests.test_storage import WIRE, feed_ids, new_article

    (feed,) = feed_ids(storage, WIRE)
    copies = [new_article(feed, key, canonical_url="https://news.example/one") for key in "ab"]
    with storage.transaction():
        grouped = [add_article_to_story(storage, copies[0], Settings(), new_story_id="s1")]
        grouped.append(add_article_to_story(storage, copies[1], Settings(), new_story_id="s2"))
    assert grouped[0].story_id == grouped[1].story_id == "s1"
    alone = [new_article(feed, key, canonical_url="https://news.example/two") for key in "cd"]
    with storage.transaction():
        placed = [
            stored_alone(storage, article, Settings(), new_story_id=f"s{n}")
            for n, article in enumerate(alone, start=3)
        ]
    assert [assignment.story_id for assignment in placed] == ["s3", "s4"]
    assert storage.pending_counts() == 4  # its terms still counted, as the product does


def test_the_bench_ablation_runs_the_real_command_and_refuses_unknown_names(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  database: db.sqlite\nfeeds: []\n")
    command = [sys.executable, "-m", "bench.timed_refresh", "--config", str(config), "refresh"]
    root = Path(__file__).resolve().parent.parent
    for name, code in (("grouping", 0), ("storage", 1)):
        done = subprocess.run(
            command,
            cwd=root,
            env={**os.environ, "BENCH_ABLATE": name},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stderr
    assert "BENCH_ABLATE='storage': not one of grouping" in done.stderr


def test_the_storing_replay_stores_a_capture_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # bench/store_replay.py calls the pipeline's storing steps by their names too.
    from bench import store_replay

    capture = tmp_path / "capture.pkl"
    capture.write_bytes(b"")  # a refresh that stored no feed
    (tmp_path / "capture.pkl.yaml").write_text(
        f"settings:\n  database: {tmp_path / 'unused.sqlite'}\nfeeds: []\n"
    )
    assert store_replay.main([str(capture), "--repeat", "2"]) == 0
    assert capsys.readouterr().out.startswith("0 feeds, 0 articles, median of 2: store")
