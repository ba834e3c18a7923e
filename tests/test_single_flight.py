"""unirg.common.single_flight: concurrent callers for one key share one computation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from unirg.common.single_flight import Settle, SingleFlight


async def all_at_once(n: int, call: Callable[[], Awaitable[object]], gate: asyncio.Event) -> list[object]:
    """Start ``n`` calls in one loop turn, let each reach the gate (or join the first), then open it."""
    callers = [asyncio.create_task(call()) for _ in range(n)]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*callers, return_exceptions=True)


async def test_concurrent_callers_share_one_computation_and_the_key_is_released_after() -> None:
    shared = 0

    def count_share() -> None:
        nonlocal shared
        shared += 1

    flight: SingleFlight[str, int] = SingleFlight(on_share=count_share)
    calls = 0
    gate = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls * 10

    callers = [asyncio.create_task(flight.do("k", compute)) for _ in range(5)]
    await asyncio.sleep(0)
    assert "k" in flight and len(flight) == 1
    gate.set()
    assert await asyncio.gather(*callers) == [10] * 5
    assert (calls, shared) == (1, 4)
    assert "k" not in flight and len(flight) == 0
    assert await flight.do("k", compute) == 20  # released: a later call computes again


async def test_a_failure_reaches_every_caller_and_releases_the_key() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def fail() -> int:
        await gate.wait()
        raise LookupError("no such model")

    outcomes = await all_at_once(3, lambda: flight.do("k", fail), gate)
    assert [type(outcome) for outcome in outcomes] == [LookupError] * 3
    assert all(str(outcome) == "no such model" for outcome in outcomes)
    assert len(flight) == 0

    async def succeed() -> int:
        return 7

    assert await flight.do("k", succeed) == 7


async def test_batches_compute_each_key_once_across_callers() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    computed: list[str] = []
    gate = asyncio.Event()

    async def compute(owned: list[str], settle: Settle[str, str]) -> None:
        computed.extend(owned)
        await gate.wait()
        for key in owned:
            settle(key, key.upper())

    first = asyncio.create_task(flight.run(["x", "y", "x"], compute))
    await asyncio.sleep(0)
    second = asyncio.create_task(flight.run(["y", "z"], compute))
    await asyncio.sleep(0)
    gate.set()
    assert await first == {"x": "X", "y": "Y"}
    assert await second == {"y": "Y", "z": "Z"}
    assert sorted(computed) == ["x", "y", "z"]
    assert len(flight) == 0


async def test_a_waiter_takes_over_when_the_computing_caller_is_cancelled() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    started = asyncio.Event()

    async def hang(owned: list[str], settle: Settle[str, str]) -> None:
        started.set()
        await asyncio.Event().wait()

    async def quick(owned: list[str], settle: Settle[str, str]) -> None:
        for key in owned:
            settle(key, "done")

    owner = asyncio.create_task(flight.run(["k"], hang))
    await started.wait()
    waiter = asyncio.create_task(flight.run(["k"], quick))
    await asyncio.sleep(0)
    owner.cancel()
    assert await asyncio.wait_for(waiter, 10) == {"k": "done"}
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert len(flight) == 0


async def test_a_key_left_unsettled_is_an_error_not_a_hang() -> None:
    flight: SingleFlight[str, str] = SingleFlight()

    async def forget(owned: list[str], settle: Settle[str, str]) -> None:
        settle(owned[0], "one")

    with pytest.raises(RuntimeError, match="left key 'b' unsettled"):
        await asyncio.wait_for(flight.run(["a", "b"], forget), 10)
    assert len(flight) == 0


async def test_join_and_settle_give_each_caller_its_own_future() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    first, is_first = flight.join("k")
    second, is_second = flight.join("k")
    assert (is_first, is_second) == (True, False)
    first.cancel()  # one caller leaving does not cancel the other
    assert flight.live("k")
    flight.settle("k", 3)
    assert await second == 3 and not flight.live("k") and "k" not in flight
    waiter, _ = flight.join("other")
    flight.settle_all(ConnectionError("closing"))
    with pytest.raises(ConnectionError, match="closing"):
        await waiter
    assert len(flight) == 0


class FakeModel:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_the_model_registry_loads_once_for_concurrent_acquirers() -> None:
    from reward_service.models.registry import ModelRegistry

    registry = ModelRegistry()
    loads = 0
    gate = asyncio.Event()

    async def load() -> FakeModel:
        nonlocal loads
        loads += 1
        await gate.wait()
        return FakeModel()

    models = await all_at_once(3, lambda: registry.acquire("m", load), gate)
    assert loads == 1 and models[0] is models[1] is models[2]
    for _ in range(3):
        await registry.release("m")
    assert models[0].closed and "m" not in registry


async def test_the_model_registry_fails_every_acquirer_of_a_failed_load_and_can_retry() -> None:
    from reward_service.models.registry import ModelRegistry

    registry = ModelRegistry()
    gate = asyncio.Event()

    async def broken() -> FakeModel:
        await gate.wait()
        raise FileNotFoundError("no weights")

    outcomes = await all_at_once(2, lambda: registry.acquire("m", broken), gate)
    assert all(isinstance(outcome, FileNotFoundError) for outcome in outcomes)

    async def fixed() -> FakeModel:
        return FakeModel()

    assert isinstance(await registry.acquire("m", fixed), FakeModel)
