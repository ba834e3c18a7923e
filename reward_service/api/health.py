"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready once every configured profile's scorers are loaded; 503 before that, if loading failed, or
    while the service drains on shutdown (so load balancers stop sending it work)."""
    state = request.app.state
    ready = state.ready and not state.draining
    body: dict[str, Any] = {"ready": ready}
    if not getattr(request.state, "authenticated", True):
        # API keys are on and none was sent: the status for health checks, no details.
        return JSONResponse(body, status_code=200 if ready else 503)
    if state.draining:
        body["draining"] = True
    if state.load_error:
        body["error"] = state.load_error
    if state.ready:
        body.update(state.engine.readiness())
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
