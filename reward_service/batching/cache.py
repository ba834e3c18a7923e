"""A bounded in-memory cache for reference-side model work.

In GRPO every reference is scored against 8-16 candidates, often over several requests, so the
reference's embeddings, labels or graph are computed once and kept here. Entries are keyed by
``(model fingerprint, sha256 of the text)``: the fingerprint names the model and its weights so two
models never share an entry, and hashing keeps the keys small whatever the report length.
"""

from __future__ import annotations

import hashlib
from typing import Generic, TypeVar

from reward_service import metrics
from unirg.common.lru import LRU

ValueT = TypeVar("ValueT")


def text_key(fingerprint: str, text: str) -> tuple[str, str]:
    """The cache key of ``text`` under the model identified by ``fingerprint``."""
    return fingerprint, hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReferenceCache(Generic[ValueT]):
    """Least-recently-used map ``(model fingerprint, text) -> value`` holding at most ``max_entries``.

    Thread-safe (the batcher's worker thread may read it). ``max_entries=0`` disables caching.
    ``name`` labels the hit/miss metrics. Concurrent misses on one text need no guard here: the
    batcher computes identical queued or running items once.
    """

    def __init__(self, name: str, max_entries: int) -> None:
        self.name = name
        self._entries: LRU[tuple[str, str], ValueT] = LRU(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fingerprint: str, text: str) -> ValueT | None:
        """The cached value, or None (counted as a miss)."""
        value = self._entries.get(text_key(fingerprint, text))
        metrics.labelled(metrics.CACHE_HITS if value is not None else metrics.CACHE_MISSES, self.name).inc()
        return value

    def put(self, fingerprint: str, text: str, value: ValueT) -> None:
        self._entries.put(text_key(fingerprint, text), value)
        metrics.labelled(metrics.CACHE_ENTRIES, self.name).set(len(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        metrics.CACHE_ENTRIES.labels(cache=self.name).set(0)
