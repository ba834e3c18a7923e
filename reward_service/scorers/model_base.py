"""What every model scorer shares: a loaded model behind its batcher and reference cache, held through
the model registry (so components with equal models share one), and pairwise comparison of its outputs.

A model scorer supplies only what differs:

- :meth:`SharedModelScorer.weights`: the weights it loads, from its options (``unirg models`` asks);
- :meth:`SharedModelScorer.resolve`: find those weights (offline unless downloads are on), returning
  the registry key naming them and a function that loads the model;
- that function returns a :class:`ModelParts`: how to turn a text into the batcher's item, how to
  run a batch, an item's cost, and the fingerprint of the numbers;
- :meth:`SharedModelScorer.compare`: one pair's result from the two outputs.

The base builds the batcher, the reference cache and the pair encoder from :class:`ModelParts` the same
way for every scorer, scores a batch (pairs the scorer can score without the model, such as RadGraph's
empty reports, never reach it), reports readiness and fingerprint, and releases the model on close.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from reward_service.scorers.base import (
    OptionsT,
    ScoreItem,
    Scorer,
    ScoreResult,
    ScorerKind,
    ScorerOptions,
    describe_exception,
)

if TYPE_CHECKING:
    from reward_service.batching import PairEncoder
    from reward_service.models.weights import Weight
    from reward_service.settings import Settings

ItemT = TypeVar("ItemT")
OutputT = TypeVar("OutputT")


@dataclass(eq=False)
class ModelParts(Generic[ItemT, OutputT]):
    """What one loaded model contributes to its batcher, reference cache and pair encoder.

    Attributes:
        name: names the batcher in metrics, logs and errors (e.g. ``"bertscore:minilm:L6"``).
        prepare: a text -> the batcher's item (e.g. its token ids); may raise for that text alone.
        process: the forward pass of a batch of items, one output per item (runs in the batcher's thread).
        cost: an item's cost in tokens (its token count when ``bucketed``).
        fingerprint: what identifies the model's numbers (names and hashes of the weights).
        cache_key: the reference cache's key prefix for this model's outputs.
        bucketed: batch only items of one padded length (``process`` pads to it): numbers then do not
            depend on batching (see :func:`reward_service.batching.batcher_from_settings`).
        key: identifies identical items in the batcher (default: the item itself).
        cleanup: run once when the model is closed (e.g. remove a directory made at load time).
    """

    name: str
    prepare: Callable[[str], ItemT]
    process: Callable[[list[ItemT]], list[OutputT]]
    cost: Callable[[ItemT], int]
    fingerprint: dict[str, Any]
    cache_key: str
    bucketed: bool = False
    key: Callable[[ItemT], Hashable] | None = None
    cleanup: Callable[[], None] | None = None


@dataclass(eq=False)
class LoadedModel(Generic[ItemT, OutputT]):
    """A model behind its batcher and reference cache (``encoder``), with what identifies its numbers."""

    encoder: PairEncoder[ItemT, OutputT]
    fingerprint: dict[str, Any]
    cleanup: Callable[[], None] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, family: str, parts: ModelParts[ItemT, OutputT], settings: Settings
    ) -> LoadedModel[ItemT, OutputT]:
        """The batcher (``UNIRG_BATCH_*`` settings), reference cache and pair encoder of ``parts``."""
        from reward_service.batching import PairEncoder, ReferenceCache, batcher_from_settings

        batcher = batcher_from_settings(
            parts.name, parts.process, parts.cost, settings, key=parts.key, bucketed=parts.bucketed
        )
        cache: ReferenceCache[OutputT] = ReferenceCache(family, settings.reference_cache_size)
        return cls(
            PairEncoder(batcher, cache, parts.cache_key, parts.prepare), parts.fingerprint, parts.cleanup
        )

    async def close(self) -> None:
        await self.encoder.batcher.close()
        self.encoder.cache.clear()
        if self.cleanup is not None:
            self.cleanup()


class SharedModelScorer(Scorer[OptionsT], Generic[OptionsT, OutputT]):
    """A scorer whose model is acquired from, and released to, ``reward_service.models.registry.MODELS``.

    Subclasses set ``family`` (the registry key's prefix and the reference cache's name; scorers of
    one family with equal keys share a model) and implement :meth:`weights`, :meth:`resolve` and
    :meth:`compare`; they may override :meth:`score_without_model`.
    """

    kind = ScorerKind.MODEL
    family: ClassVar[str]
    #: Compare pairs in a worker thread (for comparisons that are tensor work themselves, like BERTScore's).
    compare_in_thread: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key: str | None = None
        self._model: LoadedModel[Any, OutputT] | None = None

    @classmethod
    @abstractmethod
    def weights(cls, options: ScorerOptions, settings: Settings) -> list[Weight]:
        """The weights a component with ``options`` loads (what ``unirg models fetch|check`` handle)."""

    @abstractmethod
    def resolve(self) -> tuple[str, Callable[[], ModelParts[Any, OutputT]]]:
        """Find the weights (raising ``MissingWeightsError`` when absent, before anything loads).

        Returns what names the loaded model (the part of its registry key after ``family``) and a function
        that loads it, called in a worker thread only when no equal model is loaded yet.
        """

    @abstractmethod
    def compare(self, reference: OutputT, candidate: OutputT) -> ScoreResult:
        """One pair's result from the model outputs of its reference and candidate; may raise."""

    def score_without_model(self, item: ScoreItem) -> ScoreResult | None:
        """A pair's result when it needs no model outputs (None: it does)."""
        return None

    async def load(self) -> None:
        from reward_service.models.registry import MODELS

        name, load = self.resolve()
        key = f"{self.family}:{name}"

        def build() -> LoadedModel[Any, OutputT]:
            return LoadedModel.build(self.family, load(), self.settings)

        self._model = await MODELS.acquire(key, lambda: asyncio.to_thread(build))
        self._key = key

    async def close(self) -> None:
        from reward_service.models.registry import MODELS

        if self._key is not None:
            await MODELS.release(self._key)
            self._key = self._model = None

    @property
    def model(self) -> LoadedModel[Any, OutputT]:
        if self._model is None:
            raise RuntimeError(f"scorer {self.name} is not loaded")
        return self._model

    def readiness(self) -> dict[str, Any]:
        if self._model is None:
            return {"loaded": False}
        return {
            "queued": self._model.encoder.batcher.queued,
            "cached_references": len(self._model.encoder.cache),
        }

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._model.fingerprint) if self._model else {}

    async def score_batch(
        self, items: Sequence[ScoreItem], upstream: Mapping[str, Sequence[ScoreResult]]
    ) -> list[ScoreResult]:
        results = [self.score_without_model(item) for item in items]
        pending = [index for index, result in enumerate(results) if result is None]
        references, candidates = await self.model.encoder.encode(
            [items[i].reference for i in pending], [items[i].candidate for i in pending]
        )
        if self.compare_in_thread:
            scored = await asyncio.to_thread(compare_pairs, references, candidates, self.compare)
        else:
            scored = compare_pairs(references, candidates, self.compare)
        for index, result in zip(pending, scored, strict=True):
            results[index] = result
        return cast(list[ScoreResult], results)


def compare_pairs(
    references: Sequence[OutputT | BaseException],
    candidates: Sequence[OutputT | BaseException],
    compare: Callable[[OutputT, OutputT], ScoreResult],
) -> list[ScoreResult]:
    """``compare`` each pair of outputs; a failed output or comparison fails its own item only."""
    results = []
    for reference, candidate in zip(references, candidates, strict=True):
        if isinstance(reference, BaseException):
            results.append(ScoreResult.failed(f"reference: {describe_exception(reference)}"))
        elif isinstance(candidate, BaseException):
            results.append(ScoreResult.failed(f"candidate: {describe_exception(candidate)}"))
        else:
            try:
                results.append(compare(reference, candidate))
            except Exception as exc:  # one pair's failure stays with it
                results.append(ScoreResult.failed(describe_exception(exc)))
    return results
