"""The FastAPI application factory.

Profiles (and so model weights) load in the background after the server starts: ``/healthz`` answers at
once, ``/readyz`` answers 503 until every configured profile is loaded. A profile that cannot load (a
missing weight, a bad option) stops the service with a message that says what to fix.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from reward_service import metrics
from reward_service.api import health, openrlhf, profiles, score, slime
from reward_service.api.timing import RequestMetrics
from reward_service.engine import RewardEngine
from reward_service.errors import Overloaded
from reward_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


async def _load_profiles(app: FastAPI) -> None:
    state = app.state
    try:
        await state.engine.load_configured()
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        logger.error("start-up failed, stopping the service: %s", state.load_error)
        # Stop the server the way an operator would; `unirg serve` turns load_error into a non-zero exit.
        os.kill(os.getpid(), signal.SIGTERM)
        return
    state.ready = True
    logger.info("ready: profiles %s", ", ".join(sorted(state.engine.profiles)))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    loading = asyncio.create_task(_load_profiles(app))
    try:
        yield
    finally:
        loading.cancel()
        await app.state.engine.close()


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {error.get('msg')}")
    return "; ".join(parts)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (the environment's when None)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="UniRG reward service",
        version="0.1.0",
        summary="Clinically grounded composite rewards for radiology report generation.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = RewardEngine(settings)
    app.state.request_gate = asyncio.Semaphore(settings.max_concurrent_requests)
    app.state.ready = False
    app.state.load_error = None

    app.include_router(score.router)
    app.include_router(profiles.router)
    app.include_router(health.router)
    app.include_router(openrlhf.router)
    app.include_router(slime.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.errors(), "message": _validation_message(exc)},
            status_code=422,
        )

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        metrics.REJECTED.inc()
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)}
        )

    app.add_middleware(RequestMetrics)

    return app
