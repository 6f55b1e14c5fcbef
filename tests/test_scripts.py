"""scripts/install and scripts/run install only when needed (issue 17, item 1).

After one good install, a restart must work with no package index (the README's "No
network here?" path) and must not upgrade anything. The real scripts run here against a
copy of the project whose Python is a stub that logs what it is asked to do, so nothing
is installed and no index is needed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for a venv's python: logs each call; `-I -c "import …"` fails while
# the file BROKEN exists (a venv whose system Python went away).
FAKE_VENV_PYTHON = """#!/usr/bin/env bash
echo "python $*" >>"$(dirname "$0")/../../calls.log"
if [ "${1:-}" = -I ] && [ -e "$(dirname "$0")/../../BROKEN" ]; then exit 1; fi
exit 0
"""
FAKE_AGGREGATOR = """#!/usr/bin/env bash
echo "aggregator $*" >>"$(dirname "$0")/../../calls.log"
"""
# The system Python: only ever asked to create the venv.
FAKE_SYSTEM_PYTHON = """#!/usr/bin/env bash
[ "$1 $2" = "-m venv" ] || exit 3
echo "system-python $*" >>calls.log
mkdir -p "$3/bin"
cp "$(dirname "$0")/venv-python" "$3/bin/python"
cp "$(dirname "$0")/venv-aggregator" "$3/bin/aggregator"
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's scripts, pyproject.toml and constraints.txt."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ("install", "run", "test"):
        shutil.copy2(ROOT / "scripts" / name, project / "scripts" / name)
    shutil.copy2(ROOT / "pyproject.toml", project)
    shutil.copy2(ROOT / "constraints.txt", project)
    tools = tmp_path / "tools"
    tools.mkdir()
    _executable(tools / "python3", FAKE_SYSTEM_PYTHON)
    _executable(tools / "venv-python", FAKE_VENV_PYTHON)
    _executable(tools / "venv-aggregator", FAKE_AGGREGATOR)
    return project


def run_script(project: Path, *args: str, **env: str) -> list[str]:
    """Run a script of the copy; return the calls it made (the log is then cleared)."""
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHON": str(project.parent / "tools" / "python3"),
        # Were pip really asked, it would find no index.
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        **env,
    }
    completed = subprocess.run(
        [str(project / "scripts" / args[0]), *args[1:]],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    log = project / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def pip_installs(calls: list[str]) -> list[str]:
    return [call for call in calls if " -m pip install " in call]


def test_the_first_run_installs_and_restarts_do_not(project: Path) -> None:
    first = run_script(project, "run", "demo")
    assert first[0] == "system-python -m venv .venv"
    (install,) = pip_installs(first)
    assert "--editable ." in install
    assert "--constraint constraints.txt" in install
    assert "--upgrade" not in install  # neither pip nor the dependencies behind the admin's back
    assert first[-1] == "aggregator demo"

    again = run_script(project, "run", "demo")
    assert pip_installs(again) == []
    assert again[-1] == "aggregator demo"
    assert run_script(project, "run") == ["python -I -c import aggregator.cli", "aggregator run"]


def test_a_changed_pyproject_or_constraints_installs_again(project: Path) -> None:
    run_script(project, "install")
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write("# a new dependency, say\n")
    assert len(pip_installs(run_script(project, "install"))) == 1
    assert pip_installs(run_script(project, "install")) == []
    with (project / "constraints.txt").open("a") as constraints:
        constraints.write("# re-pinned\n")
    assert len(pip_installs(run_script(project, "install"))) == 1


def test_extras_are_remembered(project: Path) -> None:
    (plain,) = pip_installs(run_script(project, "install"))
    assert plain.endswith("--editable .")
    (with_test,) = pip_installs(run_script(project, "install", "test"))
    assert with_test.endswith("--editable .[test]")
    # The test tools are there now: neither command installs again.
    assert pip_installs(run_script(project, "install", "test")) == []
    assert pip_installs(run_script(project, "install")) == []
    assert pip_installs(run_script(project, "test", "-q")) == []


def test_a_broken_venv_or_a_request_installs_again(project: Path) -> None:
    run_script(project, "install")
    (project / "BROKEN").touch()
    assert len(pip_installs(run_script(project, "install"))) == 1
    (project / "BROKEN").unlink()
    assert pip_installs(run_script(project, "install")) == []
    forced = run_script(project, "install", AGGREGATOR_REINSTALL="1")
    assert len(pip_installs(forced)) == 1


def test_constraints_pin_every_runtime_dependency() -> None:
    """The image installs pinned versions: each dependency of pyproject.toml is pinned."""
    lines = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all("==" in line for line in lines)
    pins = {line.split("==")[0].lower().replace("_", "-").replace(".", "-") for line in lines}
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    for line in block.splitlines():
        line = line.strip()
        if not line.startswith('"'):
            continue
        name = line.strip('",').split(";")[0]
        for operator in (">=", "<", "==", "~="):
            name = name.split(operator)[0]
        assert name.strip().lower().replace("_", "-").replace(".", "-") in pins, name
