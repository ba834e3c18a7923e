"""One bounded least-recently-used map, with an optional time to live.

Every in-process cache of the tree is one of these: the model scorers' reference cache, the judge's
verdict cache when no Redis is set, the TRL reward functions' pending batches. The caller passes the
size (and TTL) in, read from its own settings; this module reads no configuration.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")


class LRU(Generic[KeyT, ValueT]):
    """A map of at most ``max_entries`` entries; beyond it the least recently used is evicted.

    ``get`` and ``put`` both count as a use. With ``ttl_s`` an entry is also dropped once it is
    ``ttl_s`` seconds old (by ``clock``, :func:`time.monotonic` unless given), whatever its use;
    ``put`` of an existing key starts its lifetime again. ``max_entries=0`` stores nothing, so a
    cache sized 0 in the settings is off. Thread-safe: a lock guards every operation (the model
    scorers read their cache from the batcher's worker thread).
    """

    def __init__(
        self,
        max_entries: int,
        *,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 (or None for no expiry), got {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        # key -> (expiry time, value), least recently used first.
        self._entries: OrderedDict[KeyT, tuple[float, ValueT]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._entries)

    def get(self, key: KeyT) -> ValueT | None:
        """The value under ``key`` (now the most recently used), or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if expires_at <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: KeyT, value: ValueT) -> None:
        """Store ``value`` under ``key`` as the most recently used, evicting beyond ``max_entries``."""
        if self.max_entries == 0:
            return
        expires_at = math.inf if self.ttl_s is None else self._clock() + self.ttl_s
        with self._lock:
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def pop(self, key: KeyT) -> ValueT | None:
        """Remove ``key``; its value if it was present and alive, else None."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
