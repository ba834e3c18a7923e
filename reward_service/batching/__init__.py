"""Batching and caching machinery shared by the model scorers.

- :class:`DynamicBatcher`: one per loaded model; items from all concurrent requests share a bounded
  queue, are batched under a token budget and computed in a worker thread.
- :class:`ReferenceCache`: bounded LRU of reference-side work keyed by (model fingerprint, text hash).
- :class:`PairEncoder`: references (cached) and candidates of report pairs through one batcher.
- :func:`batcher_from_settings`: a batcher configured by the ``UNIRG_BATCH_*`` settings.

Queue overflow raises :class:`QueueFullError`, which the HTTP layer answers with 429.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from reward_service.batching.batcher import (
    BatcherClosedError,
    BatcherError,
    DynamicBatcher,
    ProcessFn,
    QueueFullError,
)
from reward_service.batching.cache import ReferenceCache, text_key
from reward_service.batching.pairs import PairEncoder
from reward_service.settings import Settings


def batcher_from_settings(
    name: str,
    process: ProcessFn,
    cost: Callable[[object], int],
    settings: Settings,
    *,
    key: Callable[[object], Hashable] | None = None,
) -> DynamicBatcher:
    """A :class:`DynamicBatcher` with the knobs of ``settings`` (``batch_*``)."""
    extra = {} if key is None else {"key": key}
    return DynamicBatcher(
        name,
        process,
        cost,
        token_budget=settings.batch_token_budget,
        max_wait_ms=settings.batch_max_wait_ms,
        window=settings.batch_window,
        queue_size=settings.batch_queue_size,
        **extra,
    )


__all__ = [
    "BatcherClosedError",
    "BatcherError",
    "DynamicBatcher",
    "PairEncoder",
    "ProcessFn",
    "QueueFullError",
    "ReferenceCache",
    "batcher_from_settings",
    "text_key",
]
