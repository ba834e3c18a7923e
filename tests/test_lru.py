"""unirg.common.lru: the one bounded LRU (with optional TTL) behind every in-process cache."""

from __future__ import annotations

import threading

import pytest

from unirg.common.lru import LRU


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_evicts_the_least_recently_used_and_a_get_counts_as_use() -> None:
    cache: LRU[str, int] = LRU(3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value)
    assert cache.get("a") == 1  # a is now the most recent, b the least
    cache.put("d", 4)
    assert cache.get("b") is None
    cache.put("c", 30)  # a put refreshes too: a is now the least recent
    cache.put("e", 5)
    assert [cache.get(key) for key in "acde"] == [None, 30, 4, 5]
    assert len(cache) == 3


def test_entries_expire_after_the_ttl_of_the_injected_clock() -> None:
    clock = Clock()
    cache: LRU[str, str] = LRU(10, ttl_s=60, clock=clock)
    cache.put("old", "x")
    clock.now += 30
    cache.put("young", "y")
    assert cache.get("old") == "x"  # a use does not extend the lifetime
    clock.now += 30
    assert cache.get("old") is None and len(cache) == 1  # dropped when seen expired
    assert cache.get("young") == "y"
    cache.put("young", "y2")  # a put starts the lifetime again
    clock.now += 59
    assert cache.get("young") == "y2"
    clock.now += 1
    assert cache.get("young") is None and cache.pop("young") is None


def test_size_zero_stores_nothing_and_bad_bounds_are_refused() -> None:
    off: LRU[str, int] = LRU(0)
    off.put("k", 1)
    assert off.get("k") is None and len(off) == 0
    with pytest.raises(ValueError, match="max_entries"):
        LRU(-1)
    with pytest.raises(ValueError, match="ttl_s"):
        LRU(1, ttl_s=0)


def test_pop_and_clear() -> None:
    cache: LRU[int, str] = LRU(4)
    cache.put(1, "one")
    cache.put(2, "two")
    assert cache.pop(1) == "one" and cache.pop(1) is None
    cache.clear()
    assert len(cache) == 0 and cache.get(2) is None


def test_threads_share_one_cache_within_its_bound() -> None:
    cache: LRU[tuple[int, int], int] = LRU(64)

    def work(thread: int) -> None:
        for n in range(2000):
            cache.put((thread, n % 100), n)
            cache.get((thread, (n * 7) % 100))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(cache) == 64
