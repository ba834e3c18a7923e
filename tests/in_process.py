"""The service's ASGI app run inside the test process: requests go through ``httpx.ASGITransport``.

The app is the one ``unirg serve`` runs (``create_app`` on the same settings), with its lifespan: on
:meth:`InProcessService.start` the profiles load in the background, as under uvicorn, and ``start``
waits until ``/readyz`` would answer 200. No subprocess, no socket, no interpreter start-up.

The app runs on an event loop of its own, in a daemon thread, so one app serves sync callers (tests,
``RewardClient``) and async callers on any event loop (``AsyncRewardClient``, ``httpx.AsyncClient``)
alike: :attr:`transport` and :attr:`async_transport` hand each request to that loop.

What only ``unirg serve`` does (profile checks before binding, SIGTERM draining, exiting on a failed
load, log redaction) is tested against a real process: see live_service.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from waiting import wait_until

from reward_service.app import create_app
from reward_service.settings import Settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: Host of the in-process service's URLs; nothing resolves it, as nothing needs to.
BASE_URL = "http://unirg.test"


def settings_from_env(
    profile: str = "default", extra_profiles: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Settings:
    """The settings ``unirg serve --profile P --extra-profile E`` reads with ``env`` added to the
    environment (and no ``.env`` file: a developer's must not leak into the tests)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        return Settings(_env_file=None, profile=profile, extra_profiles=list(extra_profiles))


async def _cancel_other_tasks() -> None:
    """Cancel what is still running on the loop (requests a test abandoned) before the loop closes."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class _LoopTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Sends each request to the app through ``httpx.ASGITransport`` on the app's own event loop."""

    def __init__(self, service: InProcessService) -> None:
        self._service = service
        # As behind uvicorn: an exception in the app is logged and answered 500, not raised in the caller.
        self._asgi = httpx.ASGITransport(app=self._logging_exceptions, raise_app_exceptions=False)

    async def _logging_exceptions(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._service.app(scope, receive, send)
        except Exception:
            logger.exception("Exception in ASGI application")
            raise

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a streamed (generator) body becomes bytes the app's loop can read
        return self._service.call(self._send(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        future = asyncio.run_coroutine_threadsafe(self._send(request), self._service.loop)
        return await asyncio.wrap_future(future)


class InProcessService:
    """The reward service's app on its own event loop in this process; use as a context manager.

    ``service.client()`` is an ``httpx.Client`` on it, ``service.async_client()`` an
    ``httpx.AsyncClient``; ``RewardClient(service.base_url, transport=service.transport)`` and
    ``AsyncRewardClient(service.base_url, transport=service.async_transport)`` reach it too.
    """

    base_url = BASE_URL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: FastAPI = create_app(settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="in-process-service", daemon=True)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self.transport = _LoopTransport(self)
        self.async_transport = self.transport

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        """Run ``coroutine`` on the app's event loop and return its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def ready(self) -> bool:
        """Whether ``/readyz`` would answer 200; raises RuntimeError once loading has failed."""
        if self.app.state.load_error:
            raise RuntimeError(f"the service failed to start: {self.app.state.load_error}")
        return bool(self.app.state.ready)

    def start(self, wait_ready: bool = True, ready_timeout: float = 120.0) -> InProcessService:
        """Run the app's lifespan start-up (profiles then load in the background) and, by default, wait
        until every profile is loaded."""
        self._thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.call(self._lifespan.__aenter__())
        if wait_ready:
            try:
                what = f"profiles {self.settings.profile!r} and {self.settings.extra_profiles} loaded"
                wait_until(self.ready, ready_timeout, what, interval=0.02)
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Run the lifespan's shutdown (the engine closes its scorers) and end the app's event loop."""
        if self._lifespan is not None:
            self.call(self._lifespan.__aexit__(None, None, None))
            self._lifespan = None
        if self._thread.is_alive():
            self.call(_cancel_other_tasks())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the in-process service's event loop did not stop within 30s"
            self.loop.close()

    def client(self, **options: Any) -> httpx.Client:
        """An ``httpx.Client`` on the service (``client.post("/v1/score", ...)``)."""
        return httpx.Client(base_url=self.base_url, transport=self.transport, **{"timeout": 60, **options})

    def async_client(self, **options: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on the service, usable on any event loop."""
        return httpx.AsyncClient(
            base_url=self.base_url, transport=self.async_transport, **{"timeout": 60, **options}
        )

    def __enter__(self) -> InProcessService:
        return self if self._lifespan is not None else self.start()  # start_in_process() started it

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_process(
    profile: str = "default",
    extra_profiles: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    wait_ready: bool = True,
) -> InProcessService:
    """Start the app for ``profile`` in this process, as :func:`live_service.launch_service` starts
    ``unirg serve``; call ``stop()`` on the result (or use it in a ``with`` block)."""
    service = InProcessService(settings_from_env(profile, extra_profiles, env))
    return service.start(wait_ready=wait_ready, ready_timeout=ready_timeout)
