"""Shared fixtures: offline model hubs, free loopback ports, a real service in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

# Nothing in the tests may reach a model hub: everything they load is built at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REPORTS = REPO_ROOT.parent / "shared" / "data" / "rexrank_iuxray_test.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """A real ``unirg serve`` subprocess on a loopback port."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, log_path: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_service(
    log_dir: Path,
    profile: str = "default",
    extra_profiles: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    wait_ready: bool = True,
) -> ServiceProcess:
    """Start ``unirg serve`` on a free port; by default wait until ``/readyz`` says ready."""
    port = free_port()
    command = [sys.executable, "-m", "reward_service", "serve", "--port", str(port), "--profile", profile]
    for extra in extra_profiles:
        command += ["--extra-profile", extra]
    log_path = log_dir / f"service-{port}.log"
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "UNIRG_LOG_LEVEL": "warning", **(env or {})},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
    if not wait_ready:
        return service
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
        try:
            if httpx.get(f"{service.base_url}/readyz", timeout=2).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"service not ready after {ready_timeout}s:\n{service.log()}")


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory fixture: ``start_service(profile=..., extra_profiles=..., env=...) -> base_url``."""
    started: list[ServiceProcess] = []

    def start(
        profile: str = "default",
        extra_profiles: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 120.0,
    ) -> str:
        service = launch_service(tmp_path, profile, extra_profiles, env, ready_timeout)
        started.append(service)
        return service.base_url

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def default_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One service on the default profile shared by the tests that only read from it."""
    service = launch_service(tmp_path_factory.mktemp("default-service"))
    yield service.base_url
    service.stop()


@pytest.fixture(scope="session")
def shared_reports() -> dict[str, dict]:
    """The real IU X-ray reports in ../shared/data; tests that need them skip where they are absent."""
    if not SHARED_REPORTS.is_file():
        pytest.skip(f"{SHARED_REPORTS} is absent (it lives beside the repository in development checkouts)")
    import json

    return json.loads(SHARED_REPORTS.read_text(encoding="utf-8"))
