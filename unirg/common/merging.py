"""Calls made in the same event-loop turn run as one: many one-sample calls become one batch.

Trainers that score one sample per call (verl's Reward Loop runs one asyncio task per sample) would
otherwise pay one HTTP request per sample in the client and one scorer pass per sample in the
service. Both sides use :class:`CallMerger`: the async client merges its callers into one request,
the service's engine merges concurrent requests into one scorer batch.

No timer is involved. The first call of a turn schedules a flush on the next turn and every call
made until then joins it, so a lone call waits one loop turn at most, while calls that pile up while
the loop is busy (scoring, or parsing a burst of requests) merge by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from unirg.common.single_flight import settle_future

KeyT = TypeVar("KeyT", bound=Hashable)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: ``run(key, calls)``: one result (or exception) per call, in order; raising fails every call.
RunFn = Callable[[KeyT, list[Sequence[ItemT]]], Awaitable[Sequence["ResultT | BaseException"]]]


@dataclass(slots=True)
class _Call(Generic[ItemT, ResultT]):
    items: Sequence[ItemT]
    future: asyncio.Future[ResultT]


class CallMerger(Generic[KeyT, ItemT, ResultT]):
    """Merges calls with the same key made in one event-loop turn into groups of at most ``max_items``.

    Each group runs as its own task, so a slow group (a judge call) never holds back the next turn's.
    A caller that went away (its await was cancelled) is left out of a group that has not started.
    """

    def __init__(self, run: RunFn[KeyT, ItemT, ResultT], max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._run = run
        self._max_items = max_items
        self._waiting: dict[KeyT, list[_Call[ItemT, ResultT]]] = {}
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: KeyT, items: Sequence[ItemT]) -> ResultT:
        loop = asyncio.get_running_loop()
        if self._flush_loop is not loop:
            # No flush is scheduled on this loop; calls left by a loop that closed are dropped.
            self._waiting = {}
            self._flush_loop = loop
            loop.call_soon(self._flush)
        call: _Call[ItemT, ResultT] = _Call(items, loop.create_future())
        self._waiting.setdefault(key, []).append(call)
        return await call.future

    def _flush(self) -> None:
        waiting, self._waiting, self._flush_loop = self._waiting, {}, None
        for key, calls in waiting.items():
            group: list[_Call[ItemT, ResultT]] = []
            size = 0
            for call in calls:
                if group and size + len(call.items) > self._max_items:
                    self._start(key, group)
                    group, size = [], 0
                group.append(call)
                size += len(call.items)
            self._start(key, group)

    def _start(self, key: KeyT, group: list[_Call[ItemT, ResultT]]) -> None:
        task = asyncio.ensure_future(self._run_group(key, group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_group(self, key: KeyT, group: list[_Call[ItemT, ResultT]]) -> None:
        live = [call for call in group if not call.future.done()]
        if not live:
            return
        try:
            outcomes = await self._run(key, [call.items for call in live])
        except BaseException as exc:
            for call in live:
                settle_future(call.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for call, outcome in zip(live, outcomes, strict=True):
            settle_future(call.future, outcome)
