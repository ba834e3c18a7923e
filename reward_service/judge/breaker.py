"""Circuit breakers (``purgatory``) for the judge endpoint and the Redis cache.

After ``threshold`` consecutive failures a breaker opens: calls fail at once instead of waiting for
timeouts, so a dead judge costs the trainer milliseconds rather than minutes per batch. After
``reset_s`` the breaker is half-open and lets trial calls through: a success closes it, a failure
opens it again for twice as long (up to ``max_reset_s``). Starting short means a judge that was down
for a moment is used again within about a second; backing off means a judge that stays down costs
one failed trial per ``max_reset_s``, not one per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from reward_service import metrics

_STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}


class CircuitOpenError(RuntimeError):
    """The breaker is open: the call was not attempted."""


class CircuitBreaker:
    """A named breaker whose state is exported as ``unirg_judge_breaker_state{circuit=name}``.

    Exceptions of the ``exclude`` types pass through without counting as failures (a 429 says the
    judge is alive but busy; a cancelled request says nothing about the judge).
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int,
        reset_s: float,
        max_reset_s: float | None = None,
        exclude: Sequence[type[BaseException]] = (),
    ) -> None:
        self.name = name
        self.initial_reset_s = reset_s
        self.max_reset_s = max(reset_s, max_reset_s if max_reset_s is not None else reset_s)
        #: The wait of the current (or next) open period.
        self.reset_s = reset_s
        self.state = "closed"
        self.opened_at: float | None = None
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=reset_s,
            exclude=[asyncio.CancelledError, *exclude],
        )
        self._factory.add_listener(self._on_event)
        metrics.JUDGE_BREAKER_STATE.labels(circuit=name).set(0)

    def _on_event(self, circuit: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            if event.state == "opened" and self.state == "half-opened":
                self.reset_s = min(self.reset_s * 2, self.max_reset_s)  # the trial failed: back off
            elif event.state == "closed":
                self.reset_s = self.initial_reset_s
            self.state = event.state
            self.opened_at = time.time() if event.state == "opened" else None
            metrics.JUDGE_BREAKER_STATE.labels(circuit=self.name).set(_STATE_VALUES.get(event.state, 0))

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the body under the breaker; raises :class:`CircuitOpenError` while it is open."""
        breaker = await self._factory.get_breaker(self.name)
        breaker.context.ttl = self.reset_s  # purgatory's TTL is fixed; ours backs off
        try:
            await breaker.__aenter__()
        except OpenedState:
            retry_in = max(0.0, (self.opened_at or time.time()) + self.reset_s - time.time())
            raise CircuitOpenError(
                f"circuit breaker {self.name!r} is open after repeated failures; next trial in {retry_in:.1f}s"
            ) from None
        try:
            yield
        except BaseException as exc:
            await breaker.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            await breaker.__aexit__(None, None, None)

    def readiness(self) -> dict[str, Any]:
        return {"state": self.state, "reset_s": self.reset_s, "max_reset_s": self.max_reset_s}
