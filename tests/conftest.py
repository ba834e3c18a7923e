"""Shared fixtures: offline model hubs, free loopback ports, the service in this process or in a subprocess."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub: everything they load is built at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from flaky_server import FlakyServer, flaky_server
from hub_cache import build_stage1_cache
from in_process import InProcessService, start_in_process
from live_service import SHARED_REPORTS, ServiceProcess, free_port, launch_service

__all__ = ["SHARED_REPORTS", "ServiceProcess", "free_port", "launch_service"]


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


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding every weight of unirg-stage1 (tiny random models), as `unirg models fetch` leaves it."""
    return build_stage1_cache(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture
def start_app() -> Iterator[Callable[..., InProcessService]]:
    """Factory fixture: ``start_app(profile=..., extra_profiles=..., env=...) -> InProcessService``, the
    service's app in this process (tests/in_process.py), stopped after the test."""
    started: list[InProcessService] = []

    def start(
        profile: str = "default", extra_profiles: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> InProcessService:
        service = start_in_process(profile, extra_profiles, env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def default_app() -> Iterator[InProcessService]:
    """The app on the default profile, in this process, shared by the tests that only read from it."""
    with start_in_process() as service:
        yield service


@pytest.fixture
def relay() -> Iterator[Callable[[InProcessService], FlakyServer]]:
    """Factory fixture: ``relay(app) -> FlakyServer`` on a loopback port that passes every request to the
    in-process ``app`` (and records it): for code that only takes a URL, such as the framework adapters."""
    with ExitStack() as stack:

        def start(service: InProcessService) -> FlakyServer:
            return stack.enter_context(flaky_server(stack.enter_context(service.client())))

        yield start
