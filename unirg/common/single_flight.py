"""Single flight: concurrent callers for one key share one computation.

Three places need it: the model batcher (identical items queued or running at once are computed
once), the judge (identical prompts in flight share one judge call) and the model registry (a model
acquired by several scorers at once is loaded once). All three live on one asyncio event loop, and
so does :class:`SingleFlight`; the batcher's worker thread only runs the model and never touches it,
the outcomes are settled on the loop once the thread hands them back.

It is not a cache: once a key is settled it is released, and the next call for it computes again
(the caches are :mod:`unirg.common.lru` and Redis, in front of it).

Each caller gets a future of its own, so one caller that goes away (its request was cancelled) never
cancels the others, and :meth:`SingleFlight.live` tells whether anyone still waits for a key (the
batcher drops work nobody waits for). Two ways to use it:

* :meth:`SingleFlight.run` / :meth:`SingleFlight.do`: the caller that finds a key free computes it,
  the others await its outcome. A failure reaches every caller of the key; if the computing caller
  is cancelled instead, a waiting caller takes the key over and computes it.
* :meth:`SingleFlight.join` / :meth:`SingleFlight.settle`: for a caller that computes elsewhere (the
  batcher queues the first caller's item and settles it when its batch is done).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)
ResultT = TypeVar("ResultT")

#: ``settle(key, outcome)``: hands a key's result (or exception) to every caller waiting for it.
Settle = Callable[[KeyT, ResultT | BaseException], None]
#: ``compute(owned, settle)``: computes the owned keys, calling ``settle`` once per key when it is done.
ComputeMany = Callable[[list[KeyT], Settle[KeyT, ResultT]], Awaitable[None]]


class _OwnerGone(Exception):
    """The caller computing a key was cancelled before settling it: a waiter computes it instead."""


class SingleFlight(Generic[KeyT, ResultT]):
    """The keys in flight and, per key, the futures of the callers waiting for it.

    ``on_share`` is called each time a caller joins a key already in flight (e.g. to count it).
    Use from one event loop; the futures belong to the loop that runs the caller.
    """

    def __init__(self, *, on_share: Callable[[], object] | None = None) -> None:
        self._waiters: dict[KeyT, list[asyncio.Future[ResultT]]] = {}
        self._on_share = on_share

    def __len__(self) -> int:
        """Keys in flight."""
        return len(self._waiters)

    def __contains__(self, key: object) -> bool:
        return key in self._waiters

    # --- the primitives ------------------------------------------------------------------------
    def join(self, key: KeyT) -> tuple[asyncio.Future[ResultT], bool]:
        """A new future for ``key``'s outcome, and whether the key was free (the caller must then see
        that it gets computed and settled)."""
        waiter: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(key)
        if waiters is None:
            self._waiters[key] = [waiter]
            return waiter, True
        if self._on_share is not None:
            self._on_share()
        waiters.append(waiter)
        return waiter, False

    def live(self, key: KeyT) -> bool:
        """Whether some caller still waits for ``key``."""
        return any(not waiter.done() for waiter in self._waiters.get(key, ()))

    def settle(self, key: KeyT, outcome: ResultT | BaseException) -> None:
        """Release ``key`` and hand ``outcome`` to every caller still waiting for it (no-op if not in flight)."""
        for waiter in self._waiters.pop(key, ()):
            settle_future(waiter, outcome)

    def settle_all(self, outcome: ResultT | BaseException) -> None:
        """Settle every key in flight with ``outcome`` (e.g. an error when shutting down)."""
        for key in list(self._waiters):
            self.settle(key, outcome)

    # --- computing in the first caller ---------------------------------------------------------
    async def run(self, keys: Iterable[KeyT], compute: ComputeMany[KeyT, ResultT]) -> dict[KeyT, ResultT]:
        """The result of every key; the keys no one else is computing are computed here, together.

        ``compute(owned, settle)`` must call ``settle(key, result)`` once per owned key, as soon as
        that key is done, so that callers waiting for it are released early. If ``compute`` raises,
        every owned key it left unsettled fails with that exception, here and for its waiters; a
        key that failed elsewhere raises its exception here too.
        """
        results: dict[KeyT, ResultT] = {}
        pending = list(dict.fromkeys(keys))
        while pending:
            owned: dict[KeyT, asyncio.Future[ResultT]] = {}
            waiting: dict[KeyT, asyncio.Future[ResultT]] = {}
            for key in pending:
                waiter, first = self.join(key)
                (owned if first else waiting)[key] = waiter
            pending = []
            try:
                if owned:
                    await self._compute(owned, compute)
                    for key, waiter in owned.items():
                        results[key] = waiter.result()
                for key, waiter in waiting.items():
                    try:
                        results[key] = await waiter
                    except _OwnerGone:
                        pending.append(key)
            finally:
                _let_go([*owned.values(), *waiting.values()])
        return results

    async def _compute(
        self, owned: dict[KeyT, asyncio.Future[ResultT]], compute: ComputeMany[KeyT, ResultT]
    ) -> None:
        # A caller's own future is done exactly when its flight of that key was settled: only keys
        # still unsettled are settled here (a released key may already be another caller's flight).
        try:
            await compute(list(owned), self.settle)
        except BaseException as exc:
            # Cancelled: this caller went away, a waiter computes the key instead. Failed: all fail.
            outcome = _OwnerGone() if isinstance(exc, asyncio.CancelledError) else exc
            for key, waiter in owned.items():
                if not waiter.done():
                    self.settle(key, outcome)
            raise
        for key, waiter in owned.items():
            if not waiter.done():
                self.settle(key, RuntimeError(f"single-flight computation left key {key!r} unsettled"))

    async def do(self, key: KeyT, compute: Callable[[], Awaitable[ResultT]]) -> ResultT:
        """``await compute()`` for ``key``, or the outcome of the identical call already in flight."""

        async def compute_one(owned: list[KeyT], settle: Settle[KeyT, ResultT]) -> None:
            settle(key, await compute())

        return (await self.run([key], compute_one))[key]


def settle_future(future: asyncio.Future[ResultT], outcome: ResultT | BaseException) -> None:
    """Give ``future`` its outcome, unless it is done already: a CancelledError cancels it, another
    exception is set as its exception, anything else is its result."""
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _let_go(futures: Iterable[asyncio.Future[ResultT]]) -> None:
    """Cancel a leaving caller's futures still pending and mark failed ones as seen (no asyncio warning)."""
    for future in futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()
