"""Request counting and timing as a plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request in a task group and memory streams; for
one-item score requests that wrapping cost as much as the scoring. This middleware only watches the
``http.response.start`` message go by.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reward_service import metrics


class RequestMetrics:
    """Counts requests by route and status, observes their latency and sets ``X-Process-Time-Ms``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                # The router stores the matched route in the (shared) scope before the endpoint runs.
                path = getattr(scope.get("route"), "path", "unmatched")
                metrics.labelled(metrics.REQUESTS, path, str(message["status"])).inc()
                metrics.labelled(metrics.REQUEST_LATENCY, path).observe(elapsed)
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"x-process-time-ms", f"{elapsed * 1000:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_timed)
