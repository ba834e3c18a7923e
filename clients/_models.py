"""Typed requests and results of the reward clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardItem:
    """One report pair to score; ``context`` holds free text such as ``indication`` and ``comparison``."""

    reference: str
    candidate: str
    id: str | None = None
    prior_report: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"reference": self.reference, "candidate": self.candidate}
        if self.id is not None:
            payload["id"] = self.id
        if self.prior_report is not None:
            payload["prior_report"] = self.prior_report
        if self.context:
            payload["context"] = dict(self.context)
        return payload


@dataclass(frozen=True, slots=True)
class ComponentScore:
    """One component's verdict on one item, as the service computed it."""

    score: float | None
    weight: float
    contribution: float | None = None
    """What the component added to the reward (weight x transformed score, rescaled when optional
    components are missing); None for unweighted or failed components."""
    details: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The reward of one item.

    ``reward`` is None when the item could not be scored: then ``failed`` tells a request that failed
    after every retry (``errors`` holds the reason) from a service that answered with a null reward
    (a required component failed; ``errors`` says which). A missing reward is never reported as 0.
    """

    id: str
    reward: float | None
    components: Mapping[str, ComponentScore] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    failed: bool = False

    @property
    def scores(self) -> dict[str, float | None]:
        """Component key -> its raw score."""
        return {key: component.score for key, component in self.components.items()}


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The rewards of a batch, in request order, with the profile that computed them."""

    profile: str | None
    """Name of the profile that scored the batch; None when no request of the batch succeeded."""
    profile_hash: str | None
    """Identifies components, models and weights: record it with a training run."""
    items: tuple[ItemResult, ...]

    @property
    def rewards(self) -> list[float | None]:
        return [item.reward for item in self.items]

    @property
    def failed_count(self) -> int:
        """Items whose request failed after every retry."""
        return sum(item.failed for item in self.items)

    @property
    def unscored_count(self) -> int:
        """Items without a reward, for any reason."""
        return sum(item.reward is None for item in self.items)

    def component_keys(self) -> list[str]:
        """Every component key that occurs in the batch, in first-seen order."""
        keys: dict[str, None] = {}
        for item in self.items:
            keys.update(dict.fromkeys(item.components))
        return list(keys)

    def component_scores(self, key: str) -> list[float | None]:
        """One component's raw score per item (None where it failed or the item was not scored)."""
        return [item.components[key].score if key in item.components else None for item in self.items]

    def __len__(self) -> int:
        return len(self.items)
