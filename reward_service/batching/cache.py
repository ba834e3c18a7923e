"""A bounded in-memory cache for reference-side model work.

In GRPO every reference is scored against 8-16 candidates, often over several requests, so the
reference's embeddings, labels or graph are computed once and kept here. Entries are keyed by
``(model fingerprint, sha256 of the text)``: the fingerprint names the model and its weights so two
models never share an entry, and hashing keeps the keys small whatever the report length.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from reward_service import metrics

ValueT = TypeVar("ValueT")


def text_key(fingerprint: str, text: str) -> tuple[str, str]:
    """The cache key of ``text`` under the model identified by ``fingerprint``."""
    return fingerprint, hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReferenceCache(Generic[ValueT]):
    """Least-recently-used map ``(model fingerprint, text) -> value`` holding at most ``max_entries``.

    Thread-safe (the batcher's worker thread may read it). ``max_entries=0`` disables caching.
    ``name`` labels the hit/miss metrics.
    """

    def __init__(self, name: str, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], ValueT] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fingerprint: str, text: str) -> ValueT | None:
        """The cached value, or None (counted as a miss)."""
        key = text_key(fingerprint, text)
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
        (metrics.CACHE_HITS if value is not None else metrics.CACHE_MISSES).labels(cache=self.name).inc()
        return value

    def put(self, fingerprint: str, text: str, value: ValueT) -> None:
        if self.max_entries == 0:
            return
        key = text_key(fingerprint, text)
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            size = len(self._entries)
        metrics.CACHE_ENTRIES.labels(cache=self.name).set(size)

    async def get_or_compute(
        self, fingerprint: str, text: str, compute: Callable[[], Awaitable[ValueT]]
    ) -> ValueT:
        """The cached value, else ``await compute()`` stored and returned (exceptions are not cached).

        Concurrent misses on one text are deduplicated by the batcher, whose identical queued or
        running items are computed once.
        """
        value = self.get(fingerprint, text)
        if value is None:
            value = await compute()
            self.put(fingerprint, text, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        metrics.CACHE_ENTRIES.labels(cache=self.name).set(0)
