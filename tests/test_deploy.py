"""The container deployment files: Dockerfile, .dockerignore and docker-compose.yml.

Nothing here needs Docker or a network: the files are parsed and checked
statically. docker-compose.yml is validated against a vendored copy of the
official Compose Specification schema (tests/data/compose-spec.json, see
compose-spec.NOTICE next to it).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

# The command the README tells people to run; the image must install the same way.
INSTALL_COMMAND = "./scripts/install"

EXPECTED_ENVIRONMENT = {
    "AGGREGATOR_LISTEN": "0.0.0.0:8080",
    "AGGREGATOR_DATABASE": "/data/aggregator.db",
    "AGGREGATOR_CONFIG": "/app/config/feeds.yaml",
}


# --- helpers -----------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    # ruamel.yaml is a runtime dependency of the package, so it is always there.
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit between continuation lines
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


def dockerfile_args(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile_instructions() if kw == keyword]


def dockerfile_env() -> dict[str, str]:
    """Every `ENV KEY=VALUE ...` setting in the Dockerfile, later ones winning."""
    env: dict[str, str] = {}
    for args in dockerfile_args("ENV"):
        for item in shlex.split(args):
            key, sep, value = item.partition("=")
            assert sep, f"use the ENV KEY=VALUE form, not {args!r}"
            env[key] = value
    return env


def shell_commands(run_args: str) -> list[str]:
    """The simple commands of a shell-form RUN, split at `&&` and `;`."""
    commands: list[str] = []
    for chained in run_args.split("&&"):
        commands.extend(part.strip() for part in chained.split(";"))
    return [command for command in commands if command]


def exec_form(args: str) -> list[str]:
    """Parse an exec-form (JSON array) CMD/ENTRYPOINT/HEALTHCHECK command."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), args
    return value


def healthcheck_command(args: str) -> tuple[dict[str, str], str]:
    """Split `HEALTHCHECK --opt=value ... CMD command` into options and command."""
    options: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK should run a command: {args!r}"
    return options, command.strip()


def service() -> dict[str, Any]:
    compose = load_yaml(COMPOSE_FILE)
    return compose["services"]["aggregator"]


def volume_mounts(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """A service's `volumes:` in long syntax, whichever syntax the file uses."""
    mounts = []
    for entry in svc.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append(entry)
            continue
        # Short syntax: SOURCE:TARGET[:MODE]
        source, target, *mode = entry.split(":")
        is_path = source.startswith((".", "/", "~"))
        mounts.append(
            {
                "type": "bind" if is_path else "volume",
                "source": source,
                "target": target,
                "read_only": "ro" in ",".join(mode).split(","),
            }
        )
    return mounts


def published_ports(svc: dict[str, Any]) -> set[tuple[str, str]]:
    """(published, target) pairs from a service's `ports:`, short or long syntax."""
    pairs = set()
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            pairs.add((str(entry.get("published", "")), str(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")  # [IP:]HOST:CONTAINER[/proto]
        pairs.add((parts[-2] if len(parts) >= 2 else "", parts[-1]))
    return pairs


def healthcheck_text(test: str | list[str]) -> str:
    return test if isinstance(test, str) else " ".join(test)


# --- docker-compose.yml ------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_compose_file_matches_the_compose_specification(
    compose_validator: Draft7Validator,
) -> None:
    compose = load_yaml(COMPOSE_FILE)
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in compose_validator.iter_errors(compose)
    ]
    assert errors == []


def test_the_schema_really_rejects_mistakes(compose_validator: Draft7Validator) -> None:
    # Guards against a vendored schema that accepts anything.
    compose = load_yaml(COMPOSE_FILE)
    compose["services"]["aggregator"]["restart_policy"] = "always"  # not a service key
    assert not compose_validator.is_valid(compose)


def test_compose_file_has_no_obsolete_version_key() -> None:
    assert "version" not in load_yaml(COMPOSE_FILE)


def test_service_is_built_here_and_restarts() -> None:
    svc = service()
    build = svc["build"]
    context = build if isinstance(build, str) else build.get("context")
    assert context == "."
    assert svc["restart"] == "unless-stopped"
    assert svc["init"] is True
    assert svc["stop_grace_period"] == "30s"


def test_service_publishes_port_8080() -> None:
    assert ("8080", "8080") in published_ports(service())


def test_the_config_folder_is_mounted_not_the_file() -> None:
    """Issue 17: feeds.yaml alone, read-only: an editor saving by rename left the
    container on the old inode (no live reload) and import-opml could not write."""
    mounts = volume_mounts(service())
    assert [m for m in mounts if m["target"].startswith("/app/config/")] == []
    (mount,) = [m for m in mounts if m["target"] == "/app/config"]
    assert mount["type"] == "bind"
    assert mount["source"] == "./config"
    assert not mount.get("read_only")
    assert mount["bind"]["create_host_path"] is False
    # The config path the daemon reads lies inside the mounted folder.
    assert Path(EXPECTED_ENVIRONMENT["AGGREGATOR_CONFIG"]).parent == Path(mount["target"])


def test_data_lives_on_a_declared_named_volume() -> None:
    compose = load_yaml(COMPOSE_FILE)
    mounts = [m for m in volume_mounts(service()) if m["target"] == "/data"]
    assert len(mounts) == 1
    assert mounts[0]["type"] == "volume"
    assert mounts[0]["source"] in compose.get("volumes", {})


def test_healthcheck_hits_healthz() -> None:
    healthcheck = service()["healthcheck"]
    test = healthcheck["test"]
    assert isinstance(test, str) or test[0] in ("CMD", "CMD-SHELL")
    assert "http://127.0.0.1:8080/healthz" in healthcheck_text(test)
    assert healthcheck["interval"] == "30s"
    assert healthcheck["timeout"] == "5s"
    assert healthcheck["retries"] == 3
    assert healthcheck["start_period"] == "20s"


def test_environment_matches_the_image_defaults() -> None:
    environment = service()["environment"]
    if isinstance(environment, list):  # KEY=VALUE list syntax
        environment = dict(item.split("=", 1) for item in environment)
    assert environment == EXPECTED_ENVIRONMENT
    assert {key: dockerfile_env()[key] for key in EXPECTED_ENVIRONMENT} == EXPECTED_ENVIRONMENT


# --- Dockerfile --------------------------------------------------------------


def test_dockerfile_uses_python_311_slim() -> None:
    assert dockerfile_args("FROM") == ["python:3.11-slim"]
    assert dockerfile_args("WORKDIR") == ["/app"]


def test_dockerfile_installs_with_the_readme_command() -> None:
    runs = [shell_commands(args) for args in dockerfile_args("RUN")]
    assert any(INSTALL_COMMAND in commands for commands in runs), (
        f"no `RUN {INSTALL_COMMAND}` in the Dockerfile"
    )
    script = ROOT / INSTALL_COMMAND
    assert script.is_file(), f"{INSTALL_COMMAND} does not exist"
    assert os.access(script, os.X_OK), f"{INSTALL_COMMAND} is not executable"


def test_dockerfile_copies_what_the_installer_needs() -> None:
    copied = " ".join(dockerfile_args("COPY")).split()
    needed = ("pyproject.toml", "README.md", "constraints.txt", "scripts/", "aggregator/")
    for name in (*needed, "config/"):
        assert name in copied


def test_the_image_installs_pinned_versions() -> None:
    """Issue 17: the image installed whatever the index had that day."""
    install = (ROOT / "scripts" / "install").read_text()
    assert "--constraint constraints.txt" in install
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    assert any(line.startswith("httpx==") for line in pins)


def test_aggregator_is_on_the_images_path() -> None:
    """Issue 17: `docker compose exec aggregator aggregator feeds` failed."""
    path = dockerfile_env()["PATH"].split(":")
    assert path[0] == "/app/.venv/bin"
    assert "$PATH" in path  # the system's PATH follows (python for the health check)


def test_dockerfile_runs_the_daemon_as_a_non_root_user() -> None:
    users = dockerfile_args("USER")
    assert users, "the image must not run as root"
    assert users[-1] not in ("root", "0")
    assert dockerfile_args("CMD") != []
    assert exec_form(dockerfile_args("CMD")[-1]) == ["/app/.venv/bin/aggregator", "run"]


def test_dockerfile_exposes_port_and_data_volume() -> None:
    assert "8080" in dockerfile_args("EXPOSE")
    assert "/data" in dockerfile_args("VOLUME")
    assert dockerfile_env()["AGGREGATOR_DATABASE"].startswith("/data/")


def test_dockerfile_healthcheck_hits_healthz() -> None:
    (args,) = dockerfile_args("HEALTHCHECK")
    options, command = healthcheck_command(args)
    assert "/healthz" in command
    # No curl in the slim image: the check must use Python's standard library.
    assert "urllib" in command
    assert "curl" not in command
    assert options == {"interval": "30s", "timeout": "5s", "start-period": "20s", "retries": "3"}


# --- .dockerignore -----------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and line[0] != "#"]


def is_ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in dockerignore_patterns())


@pytest.mark.parametrize("name", [".venv", ".git", "data", "tests", "bench", ".pytest_cache"])
def test_dockerignore_keeps_local_state_out_of_the_build(name: str) -> None:
    assert is_ignored(name)


@pytest.mark.parametrize(
    "name", ["pyproject.toml", "README.md", "constraints.txt", "scripts", "aggregator", "config"]
)
def test_dockerignore_keeps_what_the_dockerfile_copies(name: str) -> None:
    assert not is_ignored(name)
