"""Profiles and the composite reward.

A profile is a versioned YAML file naming the components of a reward, their weights, transforms and
options. Shipped profiles live in ``reward_service/profiles/``; any other YAML path works too.

The reward of an item is ``gate * sum(weight * transform(score))`` over its weighted components,
where ``gate`` is the product of the transformed scores of the components marked ``gate: true``
(each clamped to [0, 1]; 1 when the profile has none). A gate is a veto, not a term: with
``report_guard`` as a gate, text that is not a report scores 0 however well the other components
happen to rate it, and a repeated or truncated report can only lose reward. A weighted term could
not do that, since the other terms alone may pay more than the guard takes away. Each weighted
component's ``contribution`` includes the gate, so the contributions still add up to the reward.

When a ``required`` component (weighted or gate) failed for an item, the reward is None (never 0,
which is a real score). When an optional weighted component failed, it is left out and the
remaining weights are rescaled to the same total, so the reward keeps its scale; an optional gate
that failed is left out (factor 1). The item's ``errors`` say so.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reward_service.scorers import REGISTRY, ScoreResult, ScorerKind, scorer_class

TRANSFORMS: dict[str, Callable[[float], float]] = {
    "identity": lambda x: x,
    "one_minus": lambda x: 1.0 - x,
    "negate": lambda x: -x,
    "reciprocal_one_plus": lambda x: 1.0 / (1.0 + x),
}


class ProfileError(ValueError):
    """A profile that cannot be found or does not validate; the message says what to fix."""


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered scorer name.")
    key: str | None = Field(
        default=None, description="Name of this component in responses; defaults to name."
    )
    weight: float = Field(
        default=0.0, description="Weight in the reward; 0 computes and reports the component only."
    )
    gate: bool = Field(
        default=False,
        description="Multiply the whole reward by this component's transformed score (clamped to [0, 1]) "
        "instead of adding it; a gate has weight 0.",
    )
    required: bool = Field(
        default=False, description="If this component fails for an item, its reward is null."
    )
    transform: str = Field(
        default="identity", description=f"Applied to the score first: {', '.join(TRANSFORMS)}."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Scorer options.")

    @field_validator("name")
    @classmethod
    def _known_scorer(cls, name: str) -> str:
        if name not in REGISTRY:
            raise ValueError(f"unknown scorer {name!r}; registered scorers: {', '.join(sorted(REGISTRY))}")
        return name

    @field_validator("transform")
    @classmethod
    def _known_transform(cls, transform: str) -> str:
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
        return transform

    @model_validator(mode="after")
    def _gate_is_not_a_term(self) -> ComponentSpec:
        if self.gate and self.weight:
            raise ValueError(
                f"component {self.component_key!r} is a gate and has weight {self.weight}: a gate multiplies "
                "the reward and adds nothing to it, so set its weight to 0 (or drop `gate`)"
            )
        return self

    @property
    def component_key(self) -> str:
        return self.key or self.name


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = 1
    description: str = ""
    components: tuple[ComponentSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        keys = [component.component_key for component in self.components]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"component keys must be unique; repeated: {', '.join(duplicates)} (set `key`)")
        for component in self.components:
            scorer = scorer_class(component.name)
            try:
                scorer.Options.model_validate(component.options)
            except ValidationError as exc:
                raise ValueError(f"options of component {component.component_key!r}: {exc}") from exc
            missing = [required for required in scorer.requires if required not in keys]
            if missing:
                raise ValueError(
                    f"component {component.component_key!r} reads {', '.join(missing)}: add "
                    "those components to the profile (weight 0 computes them without weighting them)"
                )
        if not any(component.weight for component in self.components):
            raise ValueError("at least one component needs a non-zero weight")
        return self

    @property
    def offline(self) -> bool:
        """Whether every component is rule-based: no model weights, GPU, judge endpoint or network."""
        return all(scorer_class(component.name).kind == ScorerKind.RULE for component in self.components)

    def dependency_layers(self) -> list[list[ComponentSpec]]:
        """Components grouped so that each group only reads results of earlier groups."""
        remaining = list(self.components)
        done: set[str] = set()
        layers: list[list[ComponentSpec]] = []
        while remaining:
            layer = [c for c in remaining if set(scorer_class(c.name).requires) <= done]
            if not layer:
                raise ProfileError(f"profile {self.name!r} has a dependency cycle among its components")
            layers.append(layer)
            done.update(c.component_key for c in layer)
            remaining = [c for c in remaining if c not in layer]
        return layers


def shipped_profiles() -> dict[str, Path]:
    """Shipped profile names -> their YAML files."""
    folder = resources.files("reward_service") / "profiles"
    return {
        Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml")
    }


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a profile YAML file by path."""
    shipped = shipped_profiles()
    path = shipped.get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        raise ProfileError(
            f"no profile {name_or_path!r}: give a YAML file path or one of {', '.join(sorted(shipped))}"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile file {path} is not valid YAML: {exc}") from exc
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"profile {path} does not validate:\n{exc}") from exc


def profile_hash(profile: Profile, fingerprints: Mapping[str, Mapping[str, Any]]) -> str:
    """Identifies exactly which reward a profile computes: components, options, models and weights."""
    canonical = json.dumps(
        {"profile": profile.model_dump(mode="json"), "scorers": dict(fingerprints)},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(slots=True)
class CompositeReward:
    reward: float | None
    contributions: dict[str, float]
    errors: list[str]
    #: Product of the gate components' factors (1.0 without gates); None when the reward is None.
    gate: float | None = 1.0


def combine(profile: Profile, results: Mapping[str, ScoreResult]) -> CompositeReward:
    """The reward of one item from its component results: gates times the weighted sum."""
    errors: list[str] = []
    weighted: dict[str, tuple[float, float]] = {}
    missing_required = False
    total_weight = 0.0
    gate = 1.0
    for component in profile.components:
        key = component.component_key
        result = results[key]
        if result.error is not None:
            errors.append(f"{key}: {result.error}")
        if not component.weight and not component.gate:
            continue
        total_weight += component.weight
        if result.score is None or not math.isfinite(result.score):
            if result.error is None:
                errors.append(f"{key}: no score")
            if component.required:
                missing_required = True
            elif component.gate:
                errors.append(f"optional gate {key} missing: reward not gated by it")
            continue
        value = TRANSFORMS[component.transform](result.score)
        if component.gate:
            gate *= min(1.0, max(0.0, value))
        else:
            weighted[key] = (component.weight, value)
    if missing_required:
        errors.append("reward is null: a required component failed")
        return CompositeReward(None, {}, errors, None)
    present_weight = sum(weight for weight, _ in weighted.values())
    if not weighted or present_weight == 0:
        errors.append("reward is null: no weighted component could be scored")
        return CompositeReward(None, {}, errors, None)
    scale = total_weight / present_weight
    if scale != 1.0:
        errors.append(f"optional components missing: remaining weights rescaled by {scale:.4g}")
    contributions = {key: weight * scale * value * gate for key, (weight, value) in weighted.items()}
    return CompositeReward(sum(contributions.values()), contributions, errors, gate)
