"""The reward engine: loads profiles onto a shared pool of scorers and scores batches with them.

Scorers are shared between profiles when name and options match, so two profiles that both use
BERTScore on the same model hold one model and one batcher. Components of a profile run
concurrently, layer by layer when one reads another's results (RadCliQ reads its four features).

Score calls for one profile that arrive in the same event-loop turn are merged into one batch
(:class:`unirg.common.merging.CallMerger`): trainers that send one sample per request (verl's Reward
Loop, OpenRLHF's agent executor, slime) then cost the scorers what one batched request would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reward_service import metrics
from reward_service.composite import (
    ComponentSpec,
    CompositeReward,
    Profile,
    combine,
    load_profile,
    profile_hash,
)
from reward_service.errors import NotReady, Overloaded
from reward_service.heap import freeze_startup_heap, release_startup_heap
from reward_service.scorers import (
    ScoreItem,
    Scorer,
    ScoreResult,
    ScorerKind,
    describe_exception,
    scorer_class,
)
from reward_service.settings import Settings
from unirg.common.extras import require_extra
from unirg.common.merging import CallMerger

logger = logging.getLogger(__name__)

#: A UTF-16 surrogate on its own (JSON allows ``"\\ud800"``): not text, cannot be encoded as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so that it can be echoed back."""
    return _LONE_SURROGATE.sub("\ufffd", text)


@dataclass(slots=True)
class LoadedProfile:
    profile: Profile
    scorers: dict[str, Scorer]
    hash: str
    #: The profile's components in dependency order (:meth:`Profile.dependency_layers`), worked out once.
    layers: list[list[ComponentSpec]] = field(init=False)

    def __post_init__(self) -> None:
        self.layers = self.profile.dependency_layers()


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
                with require_extra(f"the scorer {name!r}"):
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


class RewardEngine:
    """Holds the loaded profiles; ``score`` is the whole of what ``POST /v1/score`` computes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = ScorerPool(settings)
        self.profiles: dict[str, LoadedProfile] = {}
        self.default_profile: str | None = None
        #: Set when shutdown began: work cancelled after that is answered "retry elsewhere".
        self.draining = False
        # Keyed by profile name. Scorers score every item on its own (model inputs are padded per
        # length bucket), so an item's numbers do not depend on what it was merged with.
        self._merger: CallMerger[str, ScoreItem, BatchReward] = CallMerger(
            self._score_merged, settings.max_items_per_request
        )

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
        freeze_startup_heap()

    def resolve(self, name: str | None) -> LoadedProfile:
        name = name or self.default_profile
        if name is None or name not in self.profiles:
            raise KeyError(name)
        return self.profiles[name]

    def problem(self, item: ScoreItem) -> str | None:
        """Why ``item`` cannot be scored (it then gets a null reward alone), or None when it can."""
        limit = self.settings.max_report_chars
        if len(item.candidate) > limit:
            return (
                f"candidate has {len(item.candidate)} characters, over the limit of {limit} "
                "(UNIRG_MAX_REPORT_CHARS); not scored"
            )
        texts = [("id", item.id), ("reference", item.reference), ("candidate", item.candidate)]
        texts.append(("prior_report", item.prior_report or ""))
        for key, value in item.context.items():
            name = f"context.{without_surrogates(key)}"
            texts += [(f"the key of {name}", key), (name, value)]
        for field_name, text in texts:
            found = _LONE_SURROGATE.search(text)
            if found:
                return (
                    f"{field_name} holds a lone UTF-16 surrogate (U+{ord(found.group()):04X} at character "
                    f"{found.start()}), which is not valid Unicode text; not scored"
                )
        if not item.reference.strip():
            return "reference is empty: there is nothing to compare the candidate with; not scored"
        return None

    async def score(self, items: Sequence[ScoreItem], profile_name: str | None = None) -> BatchReward:
        """Score ``items``, merged with the other calls of this event-loop turn for the same profile.

        One that cannot be scored (see :meth:`problem`) gets a null reward alone;
        ``component_seconds`` and ``total_seconds`` are those of the merged batch.
        """
        loaded = self.resolve(profile_name)
        problems = {index: reason for index, item in enumerate(items) if (reason := self.problem(item))}
        scorable = [item for index, item in enumerate(items) if index not in problems]
        if scorable:
            try:
                batch = await self._merger.submit(loaded.profile.name, scorable)
            except asyncio.CancelledError:
                if not self.draining:
                    raise
                # Shutdown outlasted its drain and cancels the work: answer 503 (retry elsewhere)
                # rather than let the server turn the cancellation into a 500.
                raise NotReady(
                    "scoring was stopped: the service is shutting down; retry against another replica "
                    "or after the restart"
                ) from None
        else:
            batch = BatchReward(loaded, [])
        if problems:
            scored = iter(batch.items)
            batch.items = [
                ItemReward(item, CompositeReward(None, {}, [problems[index]]), {})
                if index in problems
                else next(scored)
                for index, item in enumerate(items)
            ]
        return batch

    async def _score_merged(self, name: str, calls: list[Sequence[ScoreItem]]) -> list[BatchReward]:
        batch = await self._score_now([item for items in calls for item in items], self.resolve(name))
        parts, offset = [], 0
        for items in calls:
            part = batch.items[offset : offset + len(items)]
            parts.append(BatchReward(batch.profile, part, batch.component_seconds, batch.total_seconds))
            offset += len(items)
        return parts

    async def _score_now(self, items: Sequence[ScoreItem], loaded: LoadedProfile) -> BatchReward:
        started = time.perf_counter()
        results: dict[str, list[ScoreResult]] = {}
        seconds: dict[str, float] = {}
        for layer in loaded.layers:
            outcomes = await self._run_layer(loaded, layer, items, results)
            for component, (component_results, elapsed) in zip(layer, outcomes, strict=True):
                results[component.component_key] = component_results
                seconds[component.component_key] = elapsed
        rewards = []
        for index, item in enumerate(items):
            per_item = {key: component_results[index] for key, component_results in results.items()}
            rewards.append(ItemReward(item, combine(loaded.profile, per_item), per_item))
        metrics.labelled(metrics.ITEMS, loaded.profile.name).inc(len(items))
        return BatchReward(loaded, rewards, seconds, time.perf_counter() - started)

    async def _run_layer(
        self,
        loaded: LoadedProfile,
        layer: list[ComponentSpec],
        items: Sequence[ScoreItem],
        done: Mapping[str, Sequence[ScoreResult]],
    ) -> list[tuple[list[ScoreResult], float]]:
        """The results and seconds of each component of ``layer``, in its order.

        Model and judge components wait on batchers and endpoints, so they run concurrently; rule
        components are CPU work, so they run one after another, without a task each.
        """
        scorers = [(c.component_key, loaded.scorers[c.component_key]) for c in layer]
        waiting = [(key, scorer) for key, scorer in scorers if scorer.kind is not ScorerKind.RULE]
        # Started first; with no such component, an already finished gather of nothing.
        concurrent = asyncio.gather(
            *(self._run_component(scorer, key, items, done) for key, scorer in waiting)
        )
        try:
            outcomes = {
                key: await self._run_component(scorer, key, items, done)
                for key, scorer in scorers
                if scorer.kind is ScorerKind.RULE
            }
        except BaseException:
            concurrent.cancel()
            raise
        outcomes.update(zip((key for key, _ in waiting), await concurrent, strict=True))
        return [outcomes[key] for key, _ in scorers]

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
        metrics.labelled(metrics.COMPONENT_LATENCY, key).observe(elapsed)
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
        release_startup_heap()
        await self.pool.close()
