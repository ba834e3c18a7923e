"""The dynamic batcher and the reference cache, driven deterministically.

A gate (threading.Event) holds the first batch inside the worker thread, so the tests know exactly
which items are queued when the next batch is formed, without relying on timing.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from waiting import wait_until_async

from reward_service import metrics
from reward_service.batching import (
    BatcherClosedError,
    DynamicBatcher,
    QueueFullError,
    ReferenceCache,
    batcher_from_settings,
)
from reward_service.settings import Settings


class Recorder:
    """A ``process`` function that records its batches and can be held at a gate."""

    def __init__(
        self, gate_first: bool = False, bad: frozenset[str] = frozenset(), raise_on_bad: bool = False
    ) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.gate_first = gate_first
        self.bad = bad
        self.raise_on_bad = raise_on_bad
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def computed(self) -> list[str]:
        return [item for batch in self.batches for item in batch]

    def __call__(self, items: list[str]) -> list[object]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.threads.add(threading.get_ident())
            self.batches.append(list(items))
            if self.gate_first and len(self.batches) == 1:
                self.started.set()
                assert self.gate.wait(10)
            if self.raise_on_bad and any(item in self.bad for item in items):
                raise RuntimeError("batch contains a bad item")
            return [ValueError(f"bad {item}") if item in self.bad else item.upper() for item in items]
        finally:
            with self._lock:
                self.active -= 1


async def until_queued(batcher: DynamicBatcher, count: int) -> None:
    """Wait until ``count`` items wait in the batcher's queue."""
    await wait_until_async(lambda: batcher.queued >= count, 10, f"{count} items queued in {batcher.name}")


async def hold_first_batch(batcher: DynamicBatcher, recorder: Recorder, first: str) -> asyncio.Task:
    task = asyncio.create_task(batcher.submit(first))
    await wait_until_async(recorder.started.is_set, 10, "the first batch started", interval=0.001)
    return task


async def test_items_from_concurrent_callers_share_a_batch_and_run_off_the_loop() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-share", recorder, cost=len, max_wait_ms=0)
    first = await hold_first_batch(batcher, recorder, "a")
    callers = [asyncio.create_task(batcher.submit_many([f"x{i}", f"y{i}"])) for i in range(8)]
    await until_queued(batcher, 16)
    recorder.gate.set()
    results = await asyncio.gather(*callers)
    assert await first == "A"
    assert results == [[f"X{i}", f"Y{i}"] for i in range(8)]
    # All 16 items queued behind the held batch went into the second batch together.
    assert len(recorder.batches) == 2 and len(recorder.batches[1]) == 16
    assert threading.get_ident() not in recorder.threads
    assert recorder.max_active == 1
    await batcher.close()


async def test_batches_respect_the_token_budget_are_length_sorted_and_the_oldest_runs_first() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-budget", recorder, cost=len, token_budget=12, max_wait_ms=0, window=64)
    first = await hold_first_batch(batcher, recorder, "z")
    texts = ["aaaaaa", "b", "cc", "dddd", "e", "ffffff", "ggg", "hh", "i" * 20]
    pending = asyncio.create_task(batcher.submit_many(texts))
    await until_queued(batcher, len(texts))
    recorder.gate.set()
    assert await pending == [t.upper() for t in texts]
    await first
    later = recorder.batches[1:]
    assert sorted([item for batch in later for item in batch]) == sorted(texts)
    assert "aaaaaa" in later[0]  # the oldest queued item is in the next batch, whatever its length
    for batch in later:
        assert [len(item) for item in batch] == sorted(len(item) for item in batch)
        padded = len(batch) * max(len(item) for item in batch)
        assert padded <= 12 or len(batch) == 1  # an item over budget runs alone
    assert ["i" * 20] in later
    await batcher.close()


async def test_a_bad_item_fails_alone() -> None:
    recorder = Recorder(bad=frozenset({"bad"}))
    batcher = DynamicBatcher("t-bad", recorder, cost=len, max_wait_ms=0)
    results = await batcher.submit_many(["ok1", "bad", "ok2"])
    assert results[0] == "OK1" and results[2] == "OK2"
    assert isinstance(results[1], ValueError)
    with pytest.raises(ValueError, match="bad bad"):
        await batcher.submit("bad")
    await batcher.close()


async def test_a_batch_that_raises_is_retried_item_by_item() -> None:
    recorder = Recorder(bad=frozenset({"bad"}), raise_on_bad=True)
    batcher = DynamicBatcher("t-retry", recorder, cost=len, max_wait_ms=0)
    before = metrics.BATCH_RETRIES.labels(model="t-retry")._value.get()
    results = await batcher.submit_many(["ok1", "bad", "ok2"])
    assert results[0] == "OK1" and results[2] == "OK2"
    assert isinstance(results[1], RuntimeError)
    assert recorder.batches[0] == ["ok1", "bad", "ok2"]
    assert sorted(recorder.batches[1:]) == [["bad"], ["ok1"], ["ok2"]]
    assert metrics.BATCH_RETRIES.labels(model="t-retry")._value.get() == before + 1
    await batcher.close()


async def test_identical_items_are_computed_once() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-dedup", recorder, cost=len, max_wait_ms=0)
    first = await hold_first_batch(batcher, recorder, "same")
    # One caller joins the running item, others queue the same text twice.
    joined = asyncio.create_task(batcher.submit("same"))
    queued = [asyncio.create_task(batcher.submit_many(["other", "other", "same"])) for _ in range(3)]
    await until_queued(batcher, 1)
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "SAME" and await joined == "SAME"
    assert [await task for task in queued] == [["OTHER", "OTHER", "SAME"]] * 3
    computed = recorder.computed()
    assert computed.count("other") == 1
    assert computed.count("same") <= 2  # at most once running and once queued after it finished
    await batcher.close()


async def test_a_full_queue_rejects_the_whole_submission() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-full", recorder, cost=len, max_wait_ms=0, queue_size=4)
    first = await hold_first_batch(batcher, recorder, "run")
    kept = asyncio.create_task(batcher.submit_many(["a", "b", "c"]))
    await until_queued(batcher, 3)
    with pytest.raises(QueueFullError) as info:
        await batcher.submit_many(["d", "e"])
    assert info.value.free == 1 and info.value.capacity == 4
    assert batcher.queued == 3  # nothing of the refused submission was queued
    # Duplicates of queued items take no new slot.
    duplicate = asyncio.create_task(batcher.submit_many(["a", "b", "d"]))
    recorder.gate.set()
    assert await kept == ["A", "B", "C"]
    assert await duplicate == ["A", "B", "D"]
    await first
    await batcher.close()


async def test_close_fails_pending_items_cleanly() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-close", recorder, cost=len, max_wait_ms=0)
    running = await hold_first_batch(batcher, recorder, "running")
    queued = asyncio.create_task(batcher.submit_many(["q1", "q2"]))
    await until_queued(batcher, 2)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)
    recorder.gate.set()
    await closing
    outcomes = await queued
    assert all(isinstance(outcome, BatcherClosedError) for outcome in outcomes)
    with pytest.raises(BatcherClosedError):
        await running
    with pytest.raises(BatcherClosedError):
        await batcher.submit("late")


async def test_work_of_cancelled_callers_is_dropped() -> None:
    recorder = Recorder(gate_first=True)
    batcher = DynamicBatcher("t-cancel", recorder, cost=len, max_wait_ms=0)
    first = await hold_first_batch(batcher, recorder, "first")
    abandoned = asyncio.create_task(batcher.submit("abandoned"))
    kept = asyncio.create_task(batcher.submit("kept"))
    await until_queued(batcher, 2)
    abandoned.cancel()
    recorder.gate.set()
    assert await kept == "KEPT"
    await first
    assert "abandoned" not in recorder.computed()
    await batcher.close()


class HeldBehind:
    """``process`` whose batch holding "s" waits at a gate; the budget puts "s" and a long item in
    separate batches taken from the queue together, so the long one waits while "s" runs."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, items: list[str]) -> list[object]:
        self.batches.append(list(items))
        if "s" in items:
            self.started.set()
            assert self.gate.wait(10)
        return [item.upper() for item in items]

    async def start(self, batcher: DynamicBatcher) -> tuple[asyncio.Task, asyncio.Task]:
        held = asyncio.create_task(batcher.submit("s"))
        behind = asyncio.create_task(batcher.submit("long-item"))  # queued in the same loop turn
        await asyncio.to_thread(self.started.wait, 10)
        return held, behind


async def test_an_item_dropped_behind_a_running_batch_can_be_submitted_again() -> None:
    process = HeldBehind()
    batcher = DynamicBatcher("t-dropped", process, cost=len, max_wait_ms=0, token_budget=5)
    held, behind = await process.start(batcher)
    behind.cancel()  # its caller goes away while the batch ahead of it runs
    process.gate.set()
    assert await held == "S"
    await asyncio.sleep(0.05)  # the worker reaches the dropped item's batch and skips it
    assert await asyncio.wait_for(batcher.submit("long-item"), 10) == "LONG-ITEM"
    assert process.batches == [["s"], ["long-item"]]
    await batcher.close()


async def test_close_fails_items_taken_for_a_batch_that_had_not_started() -> None:
    process = HeldBehind()
    batcher = DynamicBatcher("t-close-taken", process, cost=len, max_wait_ms=0, token_budget=5)
    held, behind = await process.start(batcher)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)
    process.gate.set()
    await closing
    for caller in (held, behind):
        with pytest.raises(BatcherClosedError):
            await asyncio.wait_for(caller, 10)


async def test_batcher_from_settings_uses_the_batch_settings() -> None:
    settings = Settings(batch_token_budget=99, batch_max_wait_ms=0, batch_window=7, batch_queue_size=5)
    batcher = batcher_from_settings("t-settings", Recorder(), len, settings)
    assert (batcher.token_budget, batcher.max_wait, batcher.window, batcher.queue_size) == (99, 0, 7, 5)
    assert await batcher.submit("x") == "X"
    await batcher.close()


def test_reference_cache_is_a_bounded_lru_per_model() -> None:
    cache: ReferenceCache[str] = ReferenceCache("t-cache", max_entries=2)
    cache.put("model-a", "ref one", "A1")
    cache.put("model-b", "ref one", "B1")
    assert cache.get("model-a", "ref one") == "A1"  # also marks it recently used
    cache.put("model-a", "ref two", "A2")  # evicts the least recently used: model-b's entry
    assert cache.get("model-b", "ref one") is None
    assert cache.get("model-a", "ref one") == "A1" and cache.get("model-a", "ref two") == "A2"
    assert len(cache) == 2
    disabled: ReferenceCache[str] = ReferenceCache("t-cache-off", max_entries=0)
    disabled.put("m", "t", "v")
    assert disabled.get("m", "t") is None


def test_reference_cache_counts_hits_and_misses() -> None:
    cache: ReferenceCache[int] = ReferenceCache("t-cache-metrics", max_entries=8)
    hits, misses = (
        counter.labels(cache="t-cache-metrics") for counter in (metrics.CACHE_HITS, metrics.CACHE_MISSES)
    )
    before = hits._value.get(), misses._value.get()
    assert cache.get("m", "same text") is None
    cache.put("m", "same text", 42)
    assert [cache.get("m", "same text") for _ in range(2)] == [42, 42]
    assert (hits._value.get(), misses._value.get()) == (before[0] + 2, before[1] + 1)
    assert metrics.CACHE_ENTRIES.labels(cache="t-cache-metrics")._value.get() == 1


async def test_bucketed_batches_hold_one_padded_length_each() -> None:
    recorder = Recorder(gate_first=True)
    settings = Settings(batch_pad_multiple=4, batch_max_wait_ms=0, batch_token_budget=1000)
    batcher = batcher_from_settings("t-bucket", recorder, len, settings, bucketed=True)
    first = await hold_first_batch(batcher, recorder, "zzzzzzzzzzzz")
    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggggg", "hhh"]
    pending = asyncio.create_task(batcher.submit_many(texts))
    await until_queued(batcher, len(texts))
    recorder.gate.set()
    assert await pending == [t.upper() for t in texts]
    await first
    later = recorder.batches[1:]
    # Padded to multiples of 4: lengths 1-4 -> 4, 5-8 -> 8, 9 -> 12.
    assert sorted(sorted(batch) for batch in later) == [
        ["a", "bb", "ccc", "dddd", "hhh"],
        ["eeeee", "ffffff"],
        ["ggggggggg"],
    ]
    await batcher.close()


async def test_items_queued_while_a_batch_runs_join_the_next_batch_of_their_length() -> None:
    """Each batch is formed from what is queued when the worker is free, so an item that arrives while a
    batch runs joins the waiting items of its padded length instead of running in a batch of its own."""
    batches: list[list[str]] = []
    release = threading.Semaphore(0)

    def process(items: list[str]) -> list[str]:
        batches.append(list(items))
        assert release.acquire(timeout=10)
        return [item.upper() for item in items]

    settings = Settings(batch_pad_multiple=4, batch_max_wait_ms=0, batch_token_budget=1000)
    batcher = batcher_from_settings("t-merge", process, len, settings, bucketed=True)

    async def running(count: int) -> None:
        await wait_until_async(lambda: len(batches) == count, 10, f"batch {count} running", interval=0.001)

    first = asyncio.create_task(batcher.submit("z" * 12))
    await running(1)
    early = asyncio.create_task(batcher.submit_many(["a", "eeeee"]))  # padded lengths 4 and 8
    await until_queued(batcher, 2)
    release.release()
    await running(2)  # the oldest item's length runs first; "eeeee" waits in the queue again
    late = asyncio.create_task(batcher.submit_many(["ffffff", "bb"]))  # lengths 8 and 4, while it runs
    await until_queued(batcher, 3)
    for _ in range(3):
        release.release()
    assert await early == ["A", "EEEEE"] and await late == ["FFFFFF", "BB"] and await first == "Z" * 12
    assert batches == [["z" * 12], ["a"], ["eeeee", "ffffff"], ["bb"]]
    await batcher.close()
