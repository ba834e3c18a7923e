"""The judge: rendered prompts in, parsed verdicts out, through the cache and single flight.

For a batch of prompts, :meth:`Judge.judge` computes one cache key per prompt, lets identical keys
(in this batch or in concurrent requests) share one computation, looks all owned keys up in the
cache in one round trip, asks the backend for the misses (concurrently, within the backend's cap),
re-asks when an answer cannot be parsed, and stores the successful verdicts in one round trip.
Failures are never cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reward_service import metrics
from reward_service.judge.backends import JudgeBackend, JudgeError, build_backend
from reward_service.judge.cache import VerdictCache, build_cache, cache_key
from reward_service.judge.parsing import PARSERS, ErrorCounts, JudgeParseError
from reward_service.judge.prompts import JudgePrompt, Style
from reward_service.settings import Settings
from unirg.common.single_flight import Settle, SingleFlight

logger = logging.getLogger(__name__)

#: Longest raw answer kept in an item's details.
MAX_ANSWER_CHARS = 4000
_CACHE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class JudgeOutcome:
    """The verdict on one prompt: ``counts`` is None exactly when ``error`` says why."""

    counts: ErrorCounts | None
    answer: str | None
    error: str | None = None
    cached: bool = False


class Judge:
    """Verdicts of one judge style, from a backend behind a cache."""

    def __init__(
        self,
        settings: Settings,
        style: Style,
        *,
        backend: JudgeBackend | None = None,
        cache: VerdictCache | None = None,
    ) -> None:
        self.settings = settings
        self.style = style
        self.backend = backend or build_backend(settings)
        self.cache = cache or build_cache(settings)
        self._parse = PARSERS[style]
        # Identical prompts in flight at once (in one batch or across requests) share one judge call.
        self._flight: SingleFlight[str, JudgeOutcome] = SingleFlight(on_share=metrics.JUDGE_SHARED.inc)

    async def load(self) -> None:
        await self.backend.load()
        await self.cache.connect()

    async def close(self) -> None:
        await self.backend.close()
        await self.cache.close()

    def key_for(self, prompt: JudgePrompt) -> str:
        """The cache key: everything that decides the verdict, nothing that does not (not the URL)."""
        payload = {
            "style": prompt.style,
            "prompt_id": prompt.prompt_id,
            **self.backend.identity(),
            "reference": prompt.reference,
            "candidate": prompt.candidate,
        }
        return cache_key(self.settings.judge_cache_namespace, payload)

    async def judge(self, prompts: Sequence[JudgePrompt]) -> list[JudgeOutcome]:
        """One outcome per prompt, in order; never raises for a failing judge or cache."""
        keys = [self.key_for(prompt) for prompt in prompts]
        by_key = dict(zip(keys, prompts, strict=True))

        async def compute(owned: list[str], settle: Settle[str, JudgeOutcome]) -> None:
            cached = await self.cache.get_many(owned)
            misses = []
            for key in owned:
                outcome = _from_cache(cached.get(key))
                if outcome is None:
                    misses.append(key)
                else:
                    settle(key, outcome)
            cache_kind = self.cache.kind
            metrics.JUDGE_CACHE_HITS.labels(cache=cache_kind).inc(len(owned) - len(misses))
            metrics.JUDGE_CACHE_MISSES.labels(cache=cache_kind).inc(len(misses))

            verdicts: dict[str, dict[str, Any]] = {}

            async def ask(key: str) -> None:
                outcome = await self._ask(by_key[key])
                settle(key, outcome)  # waiters in other requests need not wait for the whole batch
                if outcome.counts is not None:
                    verdicts[key] = _to_cache(outcome)

            await asyncio.gather(*(ask(key) for key in misses))
            await self.cache.set_many(verdicts)

        results = await self._flight.run(keys, compute)
        return [results[key] for key in keys]

    async def _ask(self, prompt: JudgePrompt) -> JudgeOutcome:
        attempts = self.settings.judge_parse_retries + 1
        answer: str | None = None
        reason = ""
        for _ in range(attempts):
            try:
                answer = await self.backend.complete(prompt)
            except JudgeError as exc:
                return JudgeOutcome(None, None, str(exc))
            except Exception as exc:  # a bug in a backend fails this item, not the batch
                logger.exception("judge backend failed unexpectedly")
                return JudgeOutcome(None, None, f"judge backend failed: {type(exc).__name__}: {exc}")
            try:
                return JudgeOutcome(self._parse(answer), answer[:MAX_ANSWER_CHARS])
            except JudgeParseError as exc:
                metrics.JUDGE_PARSE_FAILURES.labels(style=self.style).inc()
                reason = str(exc)
        return JudgeOutcome(
            None,
            answer[:MAX_ANSWER_CHARS] if answer is not None else None,
            f"judge answer could not be parsed ({attempts} attempt{'s' * (attempts > 1)}): {reason}",
        )

    def readiness(self) -> dict[str, Any]:
        return {**self.backend.readiness(), "cache": self.cache.readiness(), "in_flight": len(self._flight)}


def _to_cache(outcome: JudgeOutcome) -> dict[str, Any]:
    # Counts only: the raw answer is shown for failures, which are never cached, and leaving it out
    # keeps entries small and hits fast.
    assert outcome.counts is not None
    return {"format": _CACHE_FORMAT, "counts": outcome.counts.to_json()}


def _from_cache(value: dict[str, Any] | None) -> JudgeOutcome | None:
    if value is None or value.get("format") != _CACHE_FORMAT:
        return None
    try:
        return JudgeOutcome(ErrorCounts.from_json(value["counts"]), None, cached=True)
    except (KeyError, TypeError, ValueError):
        metrics.JUDGE_CACHE_ERRORS.labels(operation="decode").inc()
        return None
