"""A real ``unirg serve`` process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

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
    python: str = sys.executable,
) -> ServiceProcess:
    """Start ``unirg serve`` on a free port; by default wait until ``/readyz`` says ready.

    ``python`` is the interpreter whose environment runs the service (another venv's, for tests that
    run where the service's dependencies are not installed)."""
    port = free_port()
    command = [python, "-m", "reward_service", "serve", "--port", str(port), "--profile", profile]
    for extra in extra_profiles:
        command += ["--extra-profile", extra]
    log_path = log_dir / f"service-{port}.log"
    process = subprocess.Popen(
        command,
        cwd=log_dir,  # not the checkout: a developer's .env there must not leak into the tests
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
