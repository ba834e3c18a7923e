"""A real ``unirg serve`` process on a free loopback port, for tests and benchmarks.

Most API and client tests run the service's app in the test process instead (tests/in_process.py):
same app, same settings, no interpreter start-up. These stay end to end, on a real process, because
what they check happens only there:

* test_lifecycle.py (the SIGTERM tests, a profile that fails to load): draining on SIGTERM, the exit
  code and the last line ``unirg serve`` prints;
* test_api.py::test_serve_refuses_a_bad_profile_before_binding and
  test_judge_service.py::test_missing_judge_settings_stop_startup_with_a_message: the checks
  ``unirg serve`` makes before it binds a port;
* test_judge_service.py::test_judge_credentials_never_show_in_readiness_or_logs: the log the command
  writes, with the redaction it installs;
* test_readme.py: the README's curl and Python examples, against a server on a port as a reader runs them;
* test_replicas.py: client failover across replicas on real sockets (relays in front of one service);
* test_trainer.py: the TRL/GRPO runs (``unirg train`` in a subprocess) against the live service;
* test_playground_browser.py: a real browser loading the playground from the server.

The session fixture ``default_service`` (conftest.py) starts one process for the tests that share it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from waiting import wait_until

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

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200; raises RuntimeError (with the log) once the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

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
    wrapper: Sequence[str] = (),
) -> ServiceProcess:
    """Start ``unirg serve`` on a free port; by default wait until ``/readyz`` says ready.

    ``python`` is the interpreter whose environment runs the service (another venv's, for tests that
    run where the service's dependencies are not installed); ``wrapper`` a command that runs it (valgrind,
    for the instruction-counting benches)."""
    port = free_port()
    command = [*wrapper, python, "-m", "unirg", "serve", "--port", str(port), "--profile", profile]
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
    try:
        what = f"the service on {service.base_url} answers /readyz 200"
        wait_until(service.ready, ready_timeout, what, interval=0.1, describe=service.log)
    except BaseException:
        service.stop()
        raise
    return service
