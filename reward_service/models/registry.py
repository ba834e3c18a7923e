"""Loaded models shared between scorers: one model instance and one batcher per model, process-wide.

CheXbert's labels and SembScore come from the same forward pass, and two BERTScore components
that differ only in baseline use the same encoder, so scorers do not own models: they acquire them
here under a key naming the weights (and device), and release them on close. The last release
closes the model (its batcher fails queued work, its thread stops).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, TypeVar

from unirg.common.single_flight import SingleFlight


class SharedModel(Protocol):
    async def close(self) -> None: ...


ModelT = TypeVar("ModelT", bound=SharedModel)


class ModelRegistry:
    """Reference-counted map ``key -> loaded model``; loads each key once even when acquired concurrently."""

    def __init__(self) -> None:
        self._models: dict[Hashable, Any] = {}
        self._refs: dict[Hashable, int] = {}
        self._loading: SingleFlight[Hashable, None] = SingleFlight()

    async def acquire(self, key: Hashable, load: Callable[[], Awaitable[ModelT]]) -> ModelT:
        """The model under ``key``, loaded with ``load()`` on first use; pair with :meth:`release`.

        Concurrent first acquisitions share one ``load()``; if it fails, all of them raise its error.
        """

        async def load_once() -> None:
            self._models[key] = await load()
            self._refs[key] = 0

        while key not in self._models:  # (the model may be released again before this caller resumes)
            await self._loading.do(key, load_once)
        self._refs[key] += 1
        return self._models[key]

    async def release(self, key: Hashable) -> None:
        """Drop one reference; the last one closes the model."""
        if key not in self._refs:
            return
        self._refs[key] -= 1
        if self._refs[key] <= 0:
            model = self._models.pop(key)
            del self._refs[key]
            await model.close()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._models


#: The process-wide registry the model scorers use.
MODELS = ModelRegistry()
