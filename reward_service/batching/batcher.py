"""Dynamic batching of model work across concurrent requests.

One :class:`DynamicBatcher` serves one loaded model. Every scorer call that needs the model submits
its items; the batcher keeps them in one bounded queue shared by all requests, forms batches under a
token budget (items sorted by length inside a window so padding stays small), and runs the model's
``process`` function in a worker thread of its own, one batch at a time, so the event loop keeps
serving HTTP while the model computes. Each submitted item gets its own asyncio future.

While a batch runs, new items queue up; the next batch starts as soon as the worker is free, and is
formed anew from everything queued by then: the batch that holds the oldest queued item, so one-item
requests arriving while a batch runs join the next batch of their length instead of starting smaller
ones, and no item waits behind later ones. A short wait (``max_wait_ms``, may be 0) lets a burst of
requests arriving together share the first batch.

Failure isolation: ``process`` returns one result *or exception* per item, and an item whose result
is an exception fails alone. If ``process`` raises for the whole batch, the batcher retries the items
one by one, so only the item that really fails gets the error.

Identical items (same ``key``) that are queued or running at the same time are computed once and
every submitter gets the result (single flight, :class:`unirg.common.single_flight.SingleFlight`:
each submitter has a future of its own, settled on the event loop when the worker thread hands the
batch's outcomes back; the thread never touches them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, overload

from reward_service import metrics
from reward_service.errors import Overloaded
from unirg.common.single_flight import SingleFlight

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: ``process(items) -> one result or exception per item``; runs in the batcher's worker thread.
ProcessFn = Callable[[list[ItemT]], Sequence["ResultT | BaseException"]]


class BatcherError(RuntimeError):
    """Base class of errors raised by the batching machinery."""


class QueueFullError(BatcherError, Overloaded):
    """The batcher's bounded queue cannot take the submitted items; the client should retry later.

    The HTTP layer maps it to ``429 Too Many Requests`` with ``Retry-After``.
    """

    def __init__(self, batcher: str, requested: int, free: int, capacity: int) -> None:
        super().__init__(
            f"model queue {batcher!r} is full: {requested} items submitted, {free} of {capacity} slots free; "
            "retry later or raise UNIRG_BATCH_QUEUE_SIZE"
        )
        self.batcher = batcher
        self.requested = requested
        self.free = free
        self.capacity = capacity


class BatcherClosedError(BatcherError):
    """The batcher was closed (service shutting down) before the item was computed."""


@dataclass(eq=False, slots=True)
class _Entry(Generic[ItemT]):
    """A distinct item in the queue or the running batch; its submitters wait in the batcher's flights."""

    item: ItemT
    key: Hashable
    cost: int
    bucket: Hashable  # None when the batcher does not bucket


def padded_length(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple``: the length a batch is padded to."""
    return -(-length // multiple) * multiple


def _identity_key(item: Hashable) -> Hashable:
    return item


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Batches items from concurrent callers into model forward passes run in a worker thread.

    Args:
        name: names the model in metrics, logs and errors (e.g. ``"bertscore:distilroberta-base"``).
        process: computes a batch; receives the items (length-sorted, deduplicated) and returns one
            result or exception per item, in order. Runs in the worker thread, never two at a time.
        cost: an item's cost in tokens (e.g. its token count). A batch's padded cost is
            ``len(batch) * max(cost)``; batches are kept under ``token_budget`` (a single item over
            budget still runs alone).
        key: identifies identical items (default: the item itself, which must then be hashable).
            Identical items queued or running at once are computed once.
        bucket: when given, a batch only holds items of one bucket. With ``bucket`` the padded
            length (see :func:`padded_length`) and ``process`` padding every batch to it, an item's
            forward pass has the same shapes whatever shares its batch, so its numbers are
            bit-identical however requests are batched (on CPU; GPU libraries may still pick
            kernels by batch size).
        token_budget: most padded tokens in one batch.
        max_wait_ms: how long the worker, finding the queue newly non-empty, waits for more items
            before starting a batch. 0 starts at once.
        window: how many queued items are sorted by cost together before being cut into batches.
        queue_size: most items queued (not yet running); beyond it :meth:`submit_many` raises
            :class:`QueueFullError`.

    Use from one event loop: the worker task starts on the first submission. ``close()`` fails
    everything still queued with :class:`BatcherClosedError`.
    """

    def __init__(
        self,
        name: str,
        process: ProcessFn[ItemT, ResultT],
        cost: Callable[[ItemT], int],
        *,
        key: Callable[[ItemT], Hashable] = _identity_key,
        bucket: Callable[[ItemT], Hashable] | None = None,
        token_budget: int = 16384,
        max_wait_ms: float = 2.0,
        window: int = 256,
        queue_size: int = 4096,
    ) -> None:
        if token_budget < 1 or window < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError("token_budget, window and queue_size must be >= 1 and max_wait_ms >= 0")
        self.name = name
        self._process = process
        self._cost = cost
        self._key = key
        self._bucket = bucket
        self.token_budget = token_budget
        self.max_wait = max_wait_ms / 1000.0
        self.window = window
        self.queue_size = queue_size
        self._queue: deque[_Entry[ItemT]] = deque()
        # The submitters of every distinct item queued or running, by key.
        self._flights: SingleFlight[Hashable, ResultT] = SingleFlight()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batcher-{name}")
        self._closed = False

    # --- submitting ----------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Distinct items waiting for a batch (not counting the batch that is running)."""
        return len(self._queue)

    async def submit(self, item: ItemT) -> ResultT:
        """Compute one item; raises the item's own exception if it failed."""
        return (await self.submit_many([item], return_exceptions=False))[0]

    @overload
    async def submit_many(
        self, items: Sequence[ItemT], *, return_exceptions: Literal[False]
    ) -> list[ResultT]: ...

    @overload
    async def submit_many(
        self, items: Sequence[ItemT], *, return_exceptions: bool = True
    ) -> list[ResultT | BaseException]: ...

    async def submit_many(
        self, items: Sequence[ItemT], *, return_exceptions: bool = True
    ) -> list[ResultT] | list[ResultT | BaseException]:
        """Compute many items, all admitted to the queue at once or none (:class:`QueueFullError`).

        With ``return_exceptions`` (the default) a failed item's exception is returned in its slot,
        so one bad item never fails its neighbours; without it the first failure is raised.
        """
        self._ensure_worker()
        waiters = self._enqueue(items)
        return await asyncio.gather(*waiters, return_exceptions=return_exceptions)

    def _enqueue(self, items: Sequence[ItemT]) -> list[asyncio.Future[ResultT]]:
        if self._closed:
            raise BatcherClosedError(f"batcher {self.name!r} is closed")
        keys = [self._key(item) for item in items]
        new = len({k for k in keys if k not in self._flights})
        free = self.queue_size - len(self._queue)
        if new > free:
            metrics.BATCHER_REJECTED.labels(model=self.name).inc(len(items))
            raise QueueFullError(self.name, new, max(free, 0), self.queue_size)
        waiters: list[asyncio.Future[ResultT]] = []
        for item, item_key in zip(items, keys, strict=True):
            waiter, first = self._flights.join(item_key)
            if first:
                bucket = None if self._bucket is None else self._bucket(item)
                self._queue.append(_Entry(item, item_key, max(1, int(self._cost(item))), bucket))
            waiters.append(waiter)
        metrics.labelled(metrics.BATCHER_QUEUE_DEPTH, self.name).set(len(self._queue))
        assert self._wakeup is not None
        self._wakeup.set()
        return waiters

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            running = self._task is not None and not self._task.done()
            if running and self._loop is not None and not self._loop.is_closed():
                raise BatcherError(f"batcher {self.name!r} is already bound to another event loop")
            # A new loop (e.g. the previous one was closed): start over on this one.
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"batcher-{self.name}")

    # --- the worker ----------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None and self._loop is not None
        while not self._closed:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                if self.max_wait > 0:
                    await asyncio.sleep(self.max_wait)  # let a burst of requests join the first batch
                continue
            batch = self._next_batch()
            if batch:
                await self._run_batch(batch)

    def _next_batch(self) -> list[_Entry[ItemT]]:
        """The batch holding the oldest live entry; the other entries go back to the queue's front.

        Up to ``window`` live entries are taken; those of the oldest's bucket are sorted by cost and cut
        under the budget, and the piece holding the oldest entry is the batch. The rest return to the
        queue in their order, to be batched again with whatever arrives while this batch runs.
        """
        taken: list[_Entry[ItemT]] = []
        while self._queue and len(taken) < self.window:
            entry = self._queue.popleft()
            if self._flights.live(entry.key):
                taken.append(entry)
            else:
                self._drop(entry)
        if not taken:
            metrics.labelled(metrics.BATCHER_QUEUE_DEPTH, self.name).set(len(self._queue))
            return []
        oldest = taken[0]
        group = sorted(
            (entry for entry in taken if entry.bucket == oldest.bucket), key=lambda entry: entry.cost
        )
        batch: list[_Entry[ItemT]] = []
        holds_oldest = False
        for entry in group:
            # Sorted ascending, so this entry's cost is the padded length of the batch it joins.
            if batch and (len(batch) + 1) * entry.cost > self.token_budget:
                if holds_oldest:
                    break
                batch = []
            batch.append(entry)
            holds_oldest = holds_oldest or entry is oldest
        chosen = {id(entry) for entry in batch}
        self._queue.extendleft(reversed([entry for entry in taken if id(entry) not in chosen]))
        metrics.labelled(metrics.BATCHER_QUEUE_DEPTH, self.name).set(len(self._queue))
        return batch

    async def _run_batch(self, batch: list[_Entry[ItemT]]) -> None:
        assert self._loop is not None
        items = [entry.item for entry in batch]
        metrics.labelled(metrics.BATCH_SIZE, self.name).observe(len(batch))
        metrics.labelled(metrics.BATCH_TOKENS, self.name).observe(len(batch) * max(e.cost for e in batch))
        started = time.perf_counter()
        try:
            outcomes = await self._loop.run_in_executor(self._executor, self._process_isolated, items)
        except asyncio.CancelledError:  # close() while the batch runs: its waiters must not hang
            self._finish(batch, [BatcherClosedError(f"batcher {self.name!r} closed")] * len(batch))
            raise
        except Exception as exc:  # the executor itself failed (e.g. shut down)
            outcomes = [exc] * len(batch)
        metrics.labelled(metrics.BATCH_SECONDS, self.name).observe(time.perf_counter() - started)
        self._finish(batch, outcomes)

    def _finish(self, batch: list[_Entry[ItemT]], outcomes: Sequence[ResultT | BaseException]) -> None:
        for entry, outcome in zip(batch, outcomes, strict=True):
            self._flights.settle(entry.key, outcome)

    def _drop(self, entry: _Entry[ItemT]) -> None:
        """Forget an entry nobody waits for any more; the next submission of its item queues it anew."""
        self._flights.settle(entry.key, asyncio.CancelledError())

    def _process_isolated(self, items: list[ItemT]) -> list[ResultT | BaseException]:
        """Run ``process`` on the batch; if it raises as a whole, retry each item alone."""
        try:
            outcomes = list(self._process(items))
            if len(outcomes) != len(items):
                raise BatcherError(f"process returned {len(outcomes)} results for {len(items)} items")
            return outcomes
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            logger.warning(
                "batch of %d on %s failed (%s); retrying items one by one", len(items), self.name, exc
            )
            metrics.BATCH_RETRIES.labels(model=self.name).inc()
        single: list[ResultT | BaseException] = []
        for item in items:
            try:
                outcome = list(self._process([item]))
                single.append(outcome[0] if len(outcome) == 1 else BatcherError("process returned no result"))
            except Exception as exc:
                single.append(exc)
        return single

    # --- shutting down -------------------------------------------------------------------------
    async def close(self) -> None:
        """Fail queued items with :class:`BatcherClosedError`, wait for the running batch, stop the thread."""
        if self._closed:
            return
        self._closed = True
        error = BatcherClosedError(f"batcher {self.name!r} closed before the item was computed")
        self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        # Queued items, and those taken for a batch that had not started when the worker stopped.
        self._flights.settle_all(error)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        metrics.BATCHER_QUEUE_DEPTH.labels(model=self.name).set(0)
