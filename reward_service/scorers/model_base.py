"""What every model scorer shares: a loaded model (weights, batcher, reference cache) held through the
model registry, so components with equal models share one, and pairwise comparison of its outputs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from reward_service.scorers.base import (
    OptionsT,
    ScoreItem,
    Scorer,
    ScoreResult,
    ScorerKind,
    describe_exception,
)

if TYPE_CHECKING:
    from reward_service.batching import PairEncoder

OutputT = TypeVar("OutputT")


class LoadedModel(Protocol):
    """A model behind its batcher and reference cache (``encoder``), with what identifies its numbers."""

    encoder: PairEncoder[Any, Any]
    fingerprint: dict[str, Any]

    async def close(self) -> None: ...


class SharedModelScorer(Scorer[OptionsT]):
    """A scorer whose model is acquired from, and released to, ``reward_service.models.registry.MODELS``."""

    kind = ScorerKind.MODEL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key: str | None = None
        self._model: LoadedModel | None = None

    @abstractmethod
    async def acquire(self) -> tuple[str, LoadedModel]:
        """Acquire the shared model (loading it on first use); returns its registry key and the model."""

    async def load(self) -> None:
        self._key, self._model = await self.acquire()

    async def close(self) -> None:
        from reward_service.models.registry import MODELS

        if self._key is not None:
            await MODELS.release(self._key)
            self._key = self._model = None

    @property
    def model(self) -> LoadedModel:
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

    async def encode_pairs(
        self, items: Sequence[ScoreItem]
    ) -> tuple[Sequence[Any | BaseException], Sequence[Any | BaseException]]:
        """Model outputs of every item's reference and candidate (an exception where one failed)."""
        return await self.model.encoder.encode(
            [item.reference for item in items], [item.candidate for item in items]
        )


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
