"""The reward engine: loads profiles onto a shared pool of scorers and scores batches with them.

Scorers are shared between profiles when name and options match, so two profiles that both use
BERTScore on the same model hold one model and one batcher. Components of a profile run
concurrently, layer by layer when one reads another's results (RadCliQ reads its four features).

Score calls for one profile that arrive in the same event-loop turn are merged into one batch
(:class:`RequestMerger`): trainers that send one sample per request (verl's Reward Loop, OpenRLHF's
agent executor, slime) then cost the scorers what one batched request would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reward_service import metrics
from reward_service.composite import CompositeReward, Profile, combine, load_profile, profile_hash
from reward_service.errors import Overloaded
from reward_service.scorers import ScoreItem, Scorer, ScoreResult, describe_exception, scorer_class
from reward_service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadedProfile:
    profile: Profile
    scorers: dict[str, Scorer]
    hash: str


@dataclass(slots=True)
class ItemReward:
    item: ScoreItem
    composite: CompositeReward
    components: dict[str, ScoreResult]


@dataclass(slots=True)
class BatchReward:
    profile: LoadedProfile
    items: list[ItemReward]
    component_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0


class ScorerPool:
    """One scorer instance per (scorer name, options), shared by every profile that uses it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._scorers: dict[tuple[str, str], Scorer] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str, options: Mapping[str, Any]) -> Scorer:
        cls = scorer_class(name)
        validated = cls.Options.model_validate(dict(options))
        pool_key = (name, json.dumps(validated.model_dump(mode="json"), sort_keys=True))
        async with self._lock:
            scorer = self._scorers.get(pool_key)
            if scorer is None:
                scorer = cls(name, validated, self._settings)
                started = time.perf_counter()
                await scorer.load()
                logger.info("loaded scorer %s in %.2fs", name, time.perf_counter() - started)
                self._scorers[pool_key] = scorer
            return scorer

    def scorers(self) -> list[Scorer]:
        return list(self._scorers.values())

    async def close(self) -> None:
        for scorer in self._scorers.values():
            try:
                await scorer.close()
            except Exception:
                logger.exception("closing scorer %s failed", scorer.name)
        self._scorers.clear()


@dataclass(slots=True)
class _Waiting:
    items: Sequence[ScoreItem]
    future: asyncio.Future[BatchReward]


class RequestMerger:
    """Merges the score calls of one profile made in the same event-loop turn into one batch.

    The first call of a turn schedules a flush for the next turn; every call made until then joins
    it. No timer is involved: while the scorers hold the loop (rule scorers) or await a model batch,
    the requests that arrive meanwhile are parsed together on the next turn and merge by themselves,
    and a lone request waits one loop turn at most. Each merged batch runs as its own task, so slow
    batches (a judge call) never hold back the next. A merged batch holds at most ``max_items``.
    Scorers score every item on its own (model inputs are padded per length bucket), so an item's
    numbers do not depend on what it was merged with.
    """

    def __init__(self, run: Callable[[list[ScoreItem]], Awaitable[BatchReward]], max_items: int) -> None:
        self._run = run
        self._max_items = max_items
        self._waiting: list[_Waiting] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def score(self, items: Sequence[ScoreItem]) -> BatchReward:
        loop = asyncio.get_running_loop()
        if self._flush_loop is not loop:
            # Nothing scheduled on this loop (a closed loop may have left callers behind: drop them).
            self._waiting = []
            self._flush_loop = loop
            loop.call_soon(self._flush)
        waiting = _Waiting(items, loop.create_future())
        self._waiting.append(waiting)
        return await waiting.future

    def _flush(self) -> None:
        self._flush_loop = None
        group: list[_Waiting] = []
        size = 0
        for waiting in self._waiting:
            if group and size + len(waiting.items) > self._max_items:
                self._start(group)
                group, size = [], 0
            group.append(waiting)
            size += len(waiting.items)
        self._waiting = []
        if group:
            self._start(group)

    def _start(self, group: list[_Waiting]) -> None:
        task = asyncio.ensure_future(self._score_group(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score_group(self, group: list[_Waiting]) -> None:
        live = [waiting for waiting in group if not waiting.future.done()]  # drop disconnected callers
        if not live:
            return
        try:
            batch = await self._run([item for waiting in live for item in waiting.items])
        except BaseException as exc:  # Overloaded, shutdown: every merged request answers the same
            for waiting in live:
                if waiting.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiting.future.cancel()
                else:
                    waiting.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        offset = 0
        for waiting in live:
            part = batch.items[offset : offset + len(waiting.items)]
            offset += len(waiting.items)
            if not waiting.future.done():
                waiting.future.set_result(
                    BatchReward(batch.profile, part, batch.component_seconds, batch.total_seconds)
                )


class RewardEngine:
    """Holds the loaded profiles; ``score`` is the whole of what ``POST /v1/score`` computes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = ScorerPool(settings)
        self.profiles: dict[str, LoadedProfile] = {}
        self.default_profile: str | None = None
        self._mergers: dict[str, RequestMerger] = {}

    async def load(self, name_or_path: str, *, default: bool = False) -> LoadedProfile:
        profile = load_profile(name_or_path)
        scorers = {
            component.component_key: await self.pool.get(component.name, component.options)
            for component in profile.components
        }
        fingerprints = {key: scorer.fingerprint() for key, scorer in scorers.items()}
        loaded = LoadedProfile(profile, scorers, profile_hash(profile, fingerprints))
        self.profiles[profile.name] = loaded
        if default or self.default_profile is None:
            self.default_profile = profile.name
        return loaded

    async def load_configured(self) -> None:
        """Load the settings' default profile and its extra profiles."""
        await self.load(self.settings.profile, default=True)
        for extra in self.settings.extra_profiles:
            await self.load(extra)

    def resolve(self, name: str | None) -> LoadedProfile:
        name = name or self.default_profile
        if name is None or name not in self.profiles:
            raise KeyError(name)
        return self.profiles[name]

    async def score(self, items: Sequence[ScoreItem], profile_name: str | None = None) -> BatchReward:
        """Score ``items``, merged with the other calls of this event-loop turn for the same profile.

        ``component_seconds`` and ``total_seconds`` are those of the merged batch.
        """
        loaded = self.resolve(profile_name)
        if not items:
            return BatchReward(loaded, [])
        name = loaded.profile.name
        merger = self._mergers.get(name)
        if merger is None:
            merger = RequestMerger(
                lambda merged: self._score_now(merged, self.resolve(name)),
                self.settings.max_items_per_request,
            )
            self._mergers[name] = merger
        return await merger.score(items)

    async def _score_now(self, items: Sequence[ScoreItem], loaded: LoadedProfile) -> BatchReward:
        started = time.perf_counter()
        results: dict[str, list[ScoreResult]] = {}
        seconds: dict[str, float] = {}
        for layer in loaded.profile.dependency_layers():
            outcomes = await asyncio.gather(
                *(
                    self._run_component(loaded.scorers[c.component_key], c.component_key, items, results)
                    for c in layer
                )
            )
            for component, (component_results, elapsed) in zip(layer, outcomes, strict=True):
                results[component.component_key] = component_results
                seconds[component.component_key] = elapsed
        rewards = []
        for index, item in enumerate(items):
            per_item = {key: component_results[index] for key, component_results in results.items()}
            rewards.append(ItemReward(item, combine(loaded.profile, per_item), per_item))
        metrics.ITEMS.labels(profile=loaded.profile.name).inc(len(items))
        return BatchReward(loaded, rewards, seconds, time.perf_counter() - started)

    async def _run_component(
        self,
        scorer: Scorer,
        key: str,
        items: Sequence[ScoreItem],
        done: Mapping[str, Sequence[ScoreResult]],
    ) -> tuple[list[ScoreResult], float]:
        started = time.perf_counter()
        upstream = {required: done[required] for required in scorer.requires}
        try:
            results = await scorer.score_batch(items, upstream)
            if len(results) != len(items):
                raise RuntimeError(f"scorer returned {len(results)} results for {len(items)} items")
        except Overloaded:
            raise  # backpressure: the whole request is answered 429 and retried by the client
        except Exception as exc:  # a failing scorer fails its component, never the request
            logger.exception("scorer %s failed on a batch of %d", key, len(items))
            results = [ScoreResult.failed(describe_exception(exc)) for _ in items]
        elapsed = time.perf_counter() - started
        metrics.COMPONENT_LATENCY.labels(component=key).observe(elapsed)
        failures = sum(result.error is not None for result in results)
        if failures:
            metrics.COMPONENT_ERRORS.labels(component=key).inc(failures)
        return results, elapsed

    def readiness(self) -> dict[str, Any]:
        return {
            "profiles": sorted(self.profiles),
            "default_profile": self.default_profile,
            # Keyed by component key, which is unique within a profile; the first profile using a
            # shared scorer names it.
            "scorers": {
                key: details
                for loaded in self.profiles.values()
                for key, scorer in loaded.scorers.items()
                if (details := scorer.readiness())
            },
        }

    async def close(self) -> None:
        await self.pool.close()
