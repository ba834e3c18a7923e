"""The FastAPI application factory.

Profiles (and so model weights) load in the background once the server listens: ``/healthz`` answers at
once, ``/readyz`` answers 503 until every configured profile is loaded. A profile that cannot load (a
missing weight, a bad option) stops the service with a message that says what to fix.

Every answer to bad input is a 4xx that says what to fix, never a 5xx: malformed, non-JSON, non-UTF-8
or too deeply nested bodies get 422, bodies over ``UNIRG_MAX_BODY_BYTES`` get 413 before they are
read, scoring before the profiles are loaded or while draining gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from reward_service import metrics
from reward_service.api import health, openrlhf, playground, profiles, score, slime
from reward_service.api.body_limit import BodyLimitMiddleware, BodyTooLargeError
from reward_service.api.timing import RequestMetrics
from reward_service.auth import ApiKeyMiddleware, KeyRing
from reward_service.engine import RewardEngine, without_surrogates
from reward_service.errors import NotReady, Overloaded
from reward_service.load import LoadMeter
from reward_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


async def _load_profiles(app: FastAPI) -> None:
    state = app.state
    if state.serving is not None:
        # Under `unirg serve`: load once the port is bound, so a failure is the last thing logged.
        await state.serving.wait()
    try:
        await state.engine.load_configured()
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        logger.error("start-up failed, stopping the service: %s", state.load_error)
        if state.stop_server is not None:
            state.stop_server()  # `unirg serve` then exits 1 with the reason
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


def _location(error: dict[str, Any]) -> str:
    return ".".join(without_surrogates(str(part)) for part in error.get("loc", ()) if part != "body")


def _validation_message(errors: list[dict[str, Any]], content_type: str | None) -> str:
    if any(
        error.get("loc") == ("body",) and error.get("type") == "model_attributes_type" for error in errors
    ):
        return (
            f"the body must be a JSON object sent with the header `Content-Type: application/json` "
            f"(this request's content type: {content_type or 'none'})"
        )
    parts = []
    for error in errors:
        message = error.get("msg")
        if error.get("type") == "json_invalid":
            message = f"{message} ({error.get('ctx', {}).get('error', 'invalid JSON')})"
        parts.append(f"{_location(error) or 'body'}: {message}")
    return "; ".join(parts)


def _safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Location, message and type of each error: its input may be bytes, NaN or unencodable text."""
    return [
        {
            "loc": [part if isinstance(part, int) else without_surrogates(str(part)) for part in e["loc"]],
            "msg": without_surrogates(str(e.get("msg", ""))),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def _unprocessable(message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "message": message}, status_code=422)


def _single_cause(exc: BaseException) -> BaseException | None:
    """The exception behind ``exc``, unwrapped from the one-member groups task groups raise."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
        cause = cause.exceptions[0]
    return cause


def _parse_error_message(cause: BaseException | None) -> str | None:
    """What to fix for a body FastAPI could not parse (it answers a vague 400 for these)."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the body is not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset {cause.start}): "
            "send the JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply to parse: a score request is at most 4 levels deep"
    return None


def _openapi_with_limits(app: FastAPI, settings: Settings, keys: KeyRing) -> Callable[[], dict[str, Any]]:
    """The OpenAPI schema with the limits this service enforces (they come from its settings)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        models = schema["components"]["schemas"]
        item = models["ScoreRequestItem"]["properties"]
        for name in ("reference", "candidate"):
            item[name]["maxLength"] = settings.max_report_chars
        for option in item["prior_report"].get("anyOf", []):
            if option.get("type") == "string":
                option["maxLength"] = settings.max_report_chars
        item["context"].update(
            maxProperties=settings.max_context_keys,
            propertyNames={"maxLength": settings.max_context_value_chars},
            additionalProperties={"type": "string", "maxLength": settings.max_context_value_chars},
        )
        models["ScoreRequest"]["properties"]["items"]["maxItems"] = settings.max_items_per_request
        limits = (
            f"Limits of this service: at most {settings.max_body_bytes} bytes per body "
            f"(UNIRG_MAX_BODY_BYTES), {settings.max_items_per_request} items (UNIRG_MAX_ITEMS_PER_REQUEST), "
            f"{settings.max_report_chars} characters per report (UNIRG_MAX_REPORT_CHARS), "
            f"{settings.max_context_keys} context keys of at most {settings.max_context_value_chars} "
            "characters (UNIRG_MAX_CONTEXT_KEYS, UNIRG_MAX_CONTEXT_VALUE_CHARS)."
        )
        for path in ("/v1/score", "/openrlhf/get_reward"):
            operation = schema["paths"][path]["post"]
            operation["description"] = f"{operation.get('description', '')}\n\n{limits}".strip()
        if keys.enabled:
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
        return schema

    return openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (the environment's when None)."""
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)  # a malformed hashes file fails here, before serving
    # FastAPIOffline serves Swagger UI's files from the package: /docs works without internet access.
    app = FastAPIOffline(
        title="UniRG reward service",
        version="0.1.0",
        summary="Clinically grounded composite rewards for radiology report generation.",
        lifespan=_lifespan,
    )
    app.openapi = _openapi_with_limits(app, settings, keys)
    app.state.settings = settings
    app.state.engine = RewardEngine(settings)
    app.state.request_gate = asyncio.Semaphore(settings.max_concurrent_requests)
    app.state.load = LoadMeter()
    app.state.ready = False
    app.state.draining = False
    app.state.load_error = None
    #: Set by `unirg serve`: an event set once the port is bound, and how to stop the server.
    app.state.serving = None
    app.state.stop_server = None

    app.include_router(score.router)
    app.include_router(profiles.router)
    app.include_router(health.router)
    app.include_router(openrlhf.router)
    app.include_router(slime.router)
    if settings.playground:
        app.include_router(playground.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        message = _validation_message(errors, request.headers.get("content-type"))
        return JSONResponse({"detail": _safe_errors(errors), "message": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cause = _single_cause(exc)
        if exc.status_code == 400 and isinstance(cause, BodyTooLargeError):
            return JSONResponse({"detail": str(cause)}, status_code=413)
        if exc.status_code == 400 and (message := _parse_error_message(cause)):
            return _unprocessable(message)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        metrics.REJECTED.inc()
        retry_after = app.state.load.retry_after_s()
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(retry_after)})

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        retry_after = app.state.load.retry_after_s() if app.state.ready else 5
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)})

    app.add_middleware(RequestMetrics)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outermost: a request without a valid key costs a header check, never a body read.
    app.add_middleware(ApiKeyMiddleware, keys=keys, metrics_public=settings.metrics_public)
    return app


def begin_drain(app: FastAPI) -> None:
    """Shutdown began: /readyz answers 503 and new scoring work is refused; work in flight goes on."""
    if not app.state.draining:
        app.state.draining = True
        app.state.engine.draining = True
        logger.info("draining: finishing requests in flight, refusing new ones")
