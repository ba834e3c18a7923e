"""The judge verdict cache: Redis shared by all replicas, or an in-process LRU when no Redis is set.

In RL the same (reference, candidate) pairs recur (duplicate rollouts, re-scoring, restarts), and a
judge call is the slowest and costliest part of the reward, so verdicts are cached:

* **Key**: ``{namespace}:{sha256 of canonical JSON}`` of everything that determines the verdict
  (style, prompt version, model, sampling parameters, reference, candidate), see :func:`cache_key`.
* **Value**: JSON, with a TTL.
* **Fail open**: a Redis that is down or slower than ``judge_cache_timeout_s`` turns lookups into
  misses and writes into no-ops, counted in ``unirg_judge_cache_errors_total`` and shown in
  ``/readyz``; it is never an error to the caller. After ``judge_cache_bypass_after`` failures in a
  row Redis is bypassed for ``judge_cache_retry_s`` (a circuit breaker) so a dead Redis does not add
  a connect timeout to every request, then tried again. A few failures in a row rather than one, so
  that a single slow reply does not switch the cache off. Reads are one ``MGET`` and writes one
  pipeline per batch.
* **Single flight**: identical requests in flight at once share one judge call
  (:class:`unirg.common.single_flight.SingleFlight`, in :class:`reward_service.judge.verdicts.Judge`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from reward_service import metrics
from reward_service.judge.breaker import CircuitBreaker, CircuitOpenError
from reward_service.redaction import redact_text, redact_url
from reward_service.settings import Settings
from unirg.common.lru import LRU

logger = logging.getLogger(__name__)

T = TypeVar("T")


def cache_key(namespace: str, payload: Mapping[str, Any]) -> str:
    """``namespace:sha256(canonical JSON of payload)``: equal payloads give equal keys on every replica."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in a candidate still gets a key (its own) instead of failing the batch.
    return f"{namespace}:{hashlib.sha256(canonical.encode('utf-8', 'surrogatepass')).hexdigest()}"


class VerdictCache(ABC):
    """Where judge verdicts (JSON objects) are kept between calls."""

    kind: str

    async def connect(self) -> None:
        """Open connections; never raises for an unreachable cache (it fails open)."""

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The cached values of those ``keys`` that are present; misses are absent."""

    @abstractmethod
    async def set_many(self, values: Mapping[str, dict[str, Any]]) -> None:
        """Store each value under its key (best effort, one round trip)."""

    def readiness(self) -> dict[str, Any]:
        return {"kind": self.kind}


class LruVerdictCache(VerdictCache):
    """An in-process LRU with TTL: the embedded default when ``UNIRG_REDIS_URL`` is unset."""

    kind = "memory"

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._entries: LRU[str, dict[str, Any]] = LRU(max_entries, ttl_s=ttl_s)

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for key in keys:
            value = self._entries.get(key)
            if value is not None:
                found[key] = value
        return found

    async def set_many(self, values: Mapping[str, dict[str, Any]]) -> None:
        for key, value in values.items():
            self._entries.put(key, value)

    def readiness(self) -> dict[str, Any]:
        return {"kind": self.kind, "entries": len(self._entries), "max_entries": self._entries.max_entries}


class _CacheUnavailable(Exception):
    """Redis could not serve this operation; the caller carries on without the cache."""


class RedisVerdictCache(VerdictCache):
    """Verdicts in Redis (``redis.asyncio``), shared by every replica; fails open."""

    kind = "redis"

    def __init__(self, url: str, *, ttl_s: int, timeout_s: float, retry_s: float, bypass_after: int) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._client: Any = None
        self._breaker = CircuitBreaker("judge-cache", threshold=bypass_after, reset_s=retry_s)
        self.errors = 0
        self.last_error: str | None = None
        #: Whether the last Redis operation succeeded (False while bypassed).
        self.available = True

    async def connect(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # redis-py retries 10 times with backoff by default: a dead Redis would then stall every request.
        self._client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        try:
            await self._run("ping", self._client.ping())
        except _CacheUnavailable:
            logger.warning(
                "judge cache: Redis at %s is unreachable; serving without it", redact_url(self._url)
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self, operation: str, command: Awaitable[T]) -> T:
        try:
            async with self._breaker.guard():
                # socket timeouts bound each read; wait_for also bounds a stalled connection pool.
                result = await asyncio.wait_for(command, self._timeout_s)
            self.available = True
            return result
        except CircuitOpenError:
            if asyncio.iscoroutine(command):
                command.close()
            metrics.JUDGE_CACHE_ERRORS.labels(operation="bypassed").inc()
            raise _CacheUnavailable from None
        except Exception as exc:  # fail open: any Redis trouble is a miss, never the caller's error
            self.available = False
            self.errors += 1
            self.last_error = f"{operation}: {type(exc).__name__}: {exc}"
            metrics.JUDGE_CACHE_ERRORS.labels(operation=operation).inc()
            logger.warning("judge cache %s failed (%s); continuing without the cache", operation, exc)
            raise _CacheUnavailable from exc

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys or self._client is None:
            return {}
        try:
            raw = await self._run("get", self._client.mget(list(keys)))
        except _CacheUnavailable:
            return {}
        found = {}
        for key, value in zip(keys, raw, strict=True):
            if value is None:
                continue
            try:
                found[key] = json.loads(value)
            except json.JSONDecodeError:
                metrics.JUDGE_CACHE_ERRORS.labels(operation="decode").inc()
        return found

    async def set_many(self, values: Mapping[str, dict[str, Any]]) -> None:
        if not values or self._client is None:
            return
        pipeline = self._client.pipeline(transaction=False)
        for key, value in values.items():
            pipeline.set(key, json.dumps(value), ex=self._ttl_s)
        with contextlib.suppress(_CacheUnavailable):
            await self._run("set", pipeline.execute())

    def readiness(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": redact_url(self._url),
            "available": self.available and self._breaker.state == "closed",
            "breaker": self._breaker.state,
            "errors": self.errors,
            "last_error": redact_text(self.last_error) if self.last_error else None,
        }


def build_cache(settings: Settings) -> VerdictCache:
    """Redis when ``UNIRG_REDIS_URL`` is set, else the in-process LRU."""
    if settings.redis_url:
        return RedisVerdictCache(
            settings.redis_url,
            ttl_s=settings.judge_cache_ttl_s,
            timeout_s=settings.judge_cache_timeout_s,
            retry_s=settings.judge_cache_retry_s,
            bypass_after=settings.judge_cache_bypass_after,
        )
    return LruVerdictCache(settings.judge_cache_lru_size, settings.judge_cache_ttl_s)
