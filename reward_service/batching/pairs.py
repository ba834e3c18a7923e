"""Encoding the two sides of report pairs through one batcher, references once per distinct text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from reward_service.batching.batcher import DynamicBatcher
from reward_service.batching.cache import ReferenceCache

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


class PairEncoder(Generic[ItemT, OutT]):
    """Computes a model's per-text output for references and candidates of a batch of pairs.

    References are looked up in ``cache`` first (keyed by ``fingerprint`` and the text); the missing
    ones and all candidates go to ``batcher`` in one submission, so they share forward passes with
    each other and with concurrent requests, and identical texts are computed once. ``prepare``
    turns a text into the batcher's item (e.g. its token ids).

    ``encode`` returns, per side, one output or exception per pair: a text that failed fails only
    the pairs that contain it.
    """

    def __init__(
        self,
        batcher: DynamicBatcher[ItemT, OutT],
        cache: ReferenceCache[OutT],
        fingerprint: str,
        prepare: Callable[[str], ItemT],
    ) -> None:
        self.batcher = batcher
        self.cache = cache
        self.fingerprint = fingerprint
        self._prepare = prepare

    async def encode(
        self, references: Sequence[str], candidates: Sequence[str]
    ) -> tuple[list[OutT | BaseException], list[OutT | BaseException]]:
        cached = [self.cache.get(self.fingerprint, r) for r in references]
        missing = [i for i, out in enumerate(cached) if out is None]
        texts = [references[i] for i in missing] + list(candidates)
        prepared: list[ItemT | BaseException] = []
        for text in texts:
            try:
                prepared.append(self._prepare(text))
            except Exception as exc:  # e.g. a text the tokenizer rejects: fails its pairs only
                prepared.append(exc)
        to_run = [item for item in prepared if not isinstance(item, BaseException)]
        computed = iter(await self.batcher.submit_many(to_run) if to_run else [])
        outputs: list[OutT | BaseException] = [
            item if isinstance(item, BaseException) else next(computed) for item in prepared
        ]
        for slot, output in zip(missing, outputs[: len(missing)], strict=True):
            if not isinstance(output, BaseException):
                self.cache.put(self.fingerprint, references[slot], output)
        computed_refs = iter(outputs[: len(missing)])
        ref_out = [next(computed_refs) if out is None else out for out in cached]
        return ref_out, outputs[len(missing) :]
