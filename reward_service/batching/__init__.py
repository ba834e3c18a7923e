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
from typing import TypeVar

from reward_service.batching.batcher import (
    BatcherClosedError,
    BatcherError,
    DynamicBatcher,
    ProcessFn,
    QueueFullError,
    padded_length,
)
from reward_service.batching.cache import ReferenceCache, text_key
from reward_service.batching.pairs import PairEncoder
from reward_service.settings import Settings

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def batcher_from_settings(
    name: str,
    process: ProcessFn[ItemT, ResultT],
    cost: Callable[[ItemT], int],
    settings: Settings,
    *,
    key: Callable[[ItemT], Hashable] | None = None,
    bucketed: bool = False,
) -> DynamicBatcher[ItemT, ResultT]:
    """A :class:`DynamicBatcher` with the knobs of ``settings`` (``batch_*``).

    With ``bucketed``, ``cost(item)`` must be the item's token count; items are then costed at
    their padded length (a multiple of ``settings.batch_pad_multiple``) and batched only with items
    of the same padded length, and ``process`` must pad each batch to
    ``padded_length(longest, settings.batch_pad_multiple)``: numbers then do not depend on batching.
    """
    extra: dict[str, Callable[[ItemT], Hashable]] = {} if key is None else {"key": key}
    batch_cost = cost
    if bucketed:
        multiple = settings.batch_pad_multiple

        def padded_cost(item: ItemT) -> int:
            return padded_length(cost(item), multiple)

        batch_cost = extra["bucket"] = padded_cost
    return DynamicBatcher(
        name,
        process,
        batch_cost,
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
    "padded_length",
    "text_key",
]
