"""Scoring evaluation pairs with reward profiles: in-process (RewardEngine) or through a running service.

Both backends give, per profile, one :class:`ScoredItem` per pair with every component's score,
details and error and the profile's reward. Results go through the disk cache, keyed by each
component's fingerprint, so a re-run scores only what it has not seen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reward_service.scorers import ScoreItem
from unirg.evaluation.cache import ResultCache, result_key

#: Pairs sent to the engine or the service at once; the progress bar advances by this much.
CHUNK_SIZE = 256
#: The name under which a profile's reward is cached next to its components.
REWARD = "reward"


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    key: str
    scorer: str  # registered scorer name (bleu2, clinical_errors, radcliq, ...)
    weight: float
    fingerprint: str  # identifies this component's numbers: scorer, options, models, upstream inputs


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    name: str
    hash: str
    components: tuple[ComponentInfo, ...]

    def by_scorer(self, scorer: str) -> ComponentInfo | None:
        return next((component for component in self.components if component.scorer == scorer), None)


#: One pair's results under one profile: component key (and ``reward``) -> {score, details, error}.
ScoredItem = dict[str, dict[str, Any]]


class ScoringBackend(Protocol):
    async def load(self, profile: str) -> ProfileInfo: ...

    async def score(self, profile: ProfileInfo, items: Sequence[ScoreItem]) -> list[ScoredItem]: ...

    async def close(self) -> None: ...


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class EngineBackend:
    """Scores in this process with :class:`~reward_service.engine.RewardEngine` (no server needed)."""

    def __init__(self) -> None:
        from reward_service.engine import RewardEngine
        from reward_service.settings import Settings

        self.engine = RewardEngine(Settings())

    async def load(self, profile: str) -> ProfileInfo:
        loaded = await self.engine.load(profile)
        fingerprints: dict[str, str] = {}
        components = []
        for layer in loaded.profile.dependency_layers():
            for spec in layer:
                scorer = loaded.scorers[spec.component_key]
                fingerprints[spec.component_key] = _digest(
                    {
                        "scorer": spec.name,
                        "options": scorer.options.model_dump(mode="json"),
                        "fingerprint": scorer.fingerprint(),
                        "upstream": [fingerprints[name] for name in scorer.requires],
                    }
                )
        for spec in loaded.profile.components:
            components.append(
                ComponentInfo(spec.component_key, spec.name, spec.weight, fingerprints[spec.component_key])
            )
        return ProfileInfo(loaded.profile.name, loaded.hash, tuple(components))

    async def score(self, profile: ProfileInfo, items: Sequence[ScoreItem]) -> list[ScoredItem]:
        batch = await self.engine.score(items, profile.name)
        return [
            {
                REWARD: {
                    "score": item.composite.reward,
                    "details": {},
                    "error": "; ".join(item.composite.errors) or None,
                },
                **{
                    key: {"score": result.score, "details": result.details, "error": result.error}
                    for key, result in item.components.items()
                },
            }
            for item in batch.items
        ]

    async def close(self) -> None:
        await self.engine.close()


class ServiceBackend:
    """Scores through a running reward service (``--service URL``) with the project's client."""

    def __init__(self, base_url: str) -> None:
        from clients import AsyncRewardClient

        self.client = AsyncRewardClient(base_url)
        self.base_url = base_url

    async def load(self, profile: str) -> ProfileInfo:
        from clients import RewardRequestError

        await self.client.wait_until_ready(timeout=60)
        try:
            info = await self.client.profile_info(profile)
        except RewardRequestError as exc:
            raise ValueError(
                f"the service at {self.base_url} does not serve profile {profile!r}: {exc}"
            ) from None
        if info.profile_hash is None:
            raise ValueError(
                f"the service at {self.base_url} knows profile {profile!r} but has not loaded it: "
                f"start it with `unirg serve --extra-profile {profile}`"
            )
        # The service publishes one hash over every component's options and model weights; a
        # component's cache identity is that hash and its key.
        components = tuple(
            ComponentInfo(c.key, c.scorer, c.weight, _digest([info.profile_hash, c.key]))
            for c in info.components
        )
        return ProfileInfo(info.name, info.profile_hash, components)

    async def score(self, profile: ProfileInfo, items: Sequence[ScoreItem]) -> list[ScoredItem]:
        from clients import RewardItem

        result = await self.client.score_items(
            [
                RewardItem(
                    id=item.id,
                    reference=item.reference,
                    candidate=item.candidate,
                    prior_report=item.prior_report,
                    context=item.context,
                )
                for item in items
            ],
            profile=profile.name,
        )
        scored = []
        for item in result.items:
            entry: ScoredItem = {
                REWARD: {"score": item.reward, "details": {}, "error": "; ".join(item.errors) or None}
            }
            for key, component in item.components.items():
                entry[key] = {
                    "score": component.score,
                    "details": dict(component.details or {}),
                    "error": component.error,
                }
            for component in profile.components:  # a failed request has no components at all
                entry.setdefault(
                    component.key, {"score": None, "details": {}, "error": entry[REWARD]["error"]}
                )
            scored.append(entry)
        return scored

    async def close(self) -> None:
        await self.client.aclose()


async def score_pairs(
    backend: ScoringBackend,
    profile: ProfileInfo,
    items: Sequence[ScoreItem],
    cache: ResultCache,
    advance: Callable[[int], None] = lambda _: None,
) -> list[ScoredItem]:
    """Every item's results under ``profile``: cached ones read, the rest scored in chunks and cached.

    Identical (reference, candidate) pairs are scored once.
    """
    fingerprints = {component.key: component.fingerprint for component in profile.components}
    fingerprints[REWARD] = profile.hash
    pairs: dict[tuple[str, str], int] = {}
    for item in items:
        pairs.setdefault((item.reference, item.candidate), len(pairs))
    unique = list(pairs)
    keys = [
        {name: result_key(fp, reference, candidate) for name, fp in fingerprints.items()}
        for reference, candidate in unique
    ]
    cached = cache.get_many(key for pair_keys in keys for key in pair_keys.values())
    results: dict[int, ScoredItem] = {}  # unique pair's index -> its results, each filled in below
    todo = []
    for index, pair_keys in enumerate(keys):
        if all(key in cached for key in pair_keys.values()):
            results[index] = {name: cached[key] for name, key in pair_keys.items()}
        else:
            todo.append(index)
    advance(len(items) - len(todo))
    first_item = {}
    for item in items:
        first_item.setdefault((item.reference, item.candidate), item)
    for start in range(0, len(todo), CHUNK_SIZE):
        chunk = todo[start : start + CHUNK_SIZE]
        scored = await backend.score(profile, [first_item[unique[index]] for index in chunk])
        fresh = {}
        for index, entry in zip(chunk, scored, strict=True):
            results[index] = entry
            if any(value["score"] is None and value["error"] for value in entry.values()):
                continue  # failures may be transient (a model or the service was down): not cached
            fresh.update({keys[index][name]: entry[name] for name in fingerprints if name in entry})
        cache.put_many(fresh)
        advance(len(chunk))
    return [results[pairs[(item.reference, item.candidate)]] for item in items]
