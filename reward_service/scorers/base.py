"""What a scorer is: a small class that scores a batch of (reference, candidate) items.

A scorer never lets one bad item fail its neighbours: it returns one :class:`ScoreResult` per item,
and an item that could not be scored carries ``score=None`` and an ``error`` instead of raising.
The engine adds a second guard around each ``score_batch`` call, so even a scorer that raises for a
whole batch only turns that component's results into errors.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from reward_service.settings import Settings


class ScorerKind(StrEnum):
    RULE = "rule"
    MODEL = "model"
    JUDGE = "judge"


@dataclass(frozen=True, slots=True)
class ScoreItem:
    """One report pair to score. ``context`` holds free-text fields such as ``indication``."""

    id: str
    reference: str
    candidate: str
    prior_report: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ScoreResult:
    """A scorer's verdict on one item: ``score`` is None exactly when ``error`` says why."""

    score: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, error: str, **details: Any) -> ScoreResult:
        return cls(score=None, details=details, error=error)


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ScorerOptions(BaseModel):
    """Base of every scorer's options; unknown keys in a profile are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=ScorerOptions)


class Scorer(ABC, Generic[OptionsT]):
    """Base class of every metric, generic over its options model: ``class X(Scorer[XOptions])``.

    Subclasses set ``kind`` and ``description``, name their options model as the type argument (validated
    when a profile is loaded, then ``self.options``; ``ScorerOptions`` for a scorer without options) and
    may set ``requires`` (keys of other components in the same profile whose results this one reads, e.g.
    RadCliQ reads BERTScore, SembScore, RadGraph and BLEU-2). ``Options`` is that model as a class
    attribute, for code that holds only the class (the engine validates a profile's options with it).
    """

    kind: ClassVar[ScorerKind]
    description: ClassVar[str]
    Options: ClassVar[type[ScorerOptions]] = ScorerOptions
    requires: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _options_argument(cls)
        if declared is None:
            return
        if "Options" not in cls.__dict__:
            cls.Options = declared
        elif not issubclass(cls.Options, declared):
            raise TypeError(
                f"{cls.__name__}.Options is {cls.Options.__name__}, not the {declared.__name__} "
                "its type argument names"
            )

    def __init__(self, name: str, options: OptionsT, settings: Settings) -> None:
        self.name = name
        self.options: OptionsT = options
        self.settings = settings

    async def load(self) -> None:
        """Load weights or open connections. Called once at start-up, before the service is ready."""

    async def close(self) -> None:
        """Release what ``load`` acquired."""

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this scorer's numbers beyond its options (model revision, weight hashes)."""
        return {}

    def readiness(self) -> dict[str, Any]:
        """Extra state shown in ``/readyz`` (e.g. a judge cache that is down)."""
        return {}

    @abstractmethod
    async def score_batch(
        self, items: Sequence[ScoreItem], upstream: Mapping[str, Sequence[ScoreResult]]
    ) -> list[ScoreResult]:
        """Score every item; ``upstream`` maps each key in ``requires`` to that component's results."""


def _options_argument(cls: type) -> type[ScorerOptions] | None:
    """The options model that ``cls`` names in its bases (``Scorer[XOptions]``, ``RuleScorer[XOptions]``)."""
    # From the class's own namespace: a subclass that names no type argument inherits ``Options``.
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Scorer):
            models = [
                arg for arg in get_args(base) if isinstance(arg, type) and issubclass(arg, ScorerOptions)
            ]
            if len(models) == 1:
                return models[0]
    return None


#: One thread for every rule scorer's large batches: pure-Python work holds the GIL, so more threads would
#: add no throughput, only more threads for the event loop to wait behind before it can answer anything.
_RULE_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unirg-rules")


class RuleScorer(Scorer[OptionsT]):
    """A deterministic, CPU-cheap scorer that scores one item at a time.

    Small batches are scored on the event loop (a thread hop would cost more than the work); larger ones
    in a worker thread, so that one request of long reports cannot hold up ``/healthz`` and every other
    request. The cut is by text length, since that is what the work grows with, not item count: a few
    thousand characters take about a millisecond, about what handing the batch to a thread costs.
    """

    kind = ScorerKind.RULE
    #: True for scorers that read the report-analysis rule files (reward_service/rules/): their hash
    #: is then part of the fingerprint, so editing a rule changes profile_hash.
    reads_report_rules: ClassVar[bool] = False
    #: Batches with more characters than this (references and candidates together) go to a worker thread.
    inline_char_limit: ClassVar[int] = 4_000

    def fingerprint(self) -> dict[str, Any]:
        if not self.reads_report_rules:
            return {}
        from reward_service.text.rules import RULES_HASH

        return {"report_rules": RULES_HASH}

    @abstractmethod
    def score_one(self, item: ScoreItem) -> ScoreResult:
        """Score one item; may raise, the failure then stays with that item."""

    def score_items(self, items: Sequence[ScoreItem]) -> list[ScoreResult]:
        results = []
        for item in items:
            try:
                results.append(self.score_one(item))
            except Exception as exc:  # one bad item must not fail its neighbours
                results.append(ScoreResult.failed(describe_exception(exc)))
        return results

    async def score_batch(
        self, items: Sequence[ScoreItem], upstream: Mapping[str, Sequence[ScoreResult]]
    ) -> list[ScoreResult]:
        if sum(len(item.reference) + len(item.candidate) for item in items) <= self.inline_char_limit:
            return self.score_items(items)
        return await asyncio.get_running_loop().run_in_executor(_RULE_EXECUTOR, self.score_items, items)
