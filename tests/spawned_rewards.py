"""Reward functions called in a spawned process, the way TRL's AsyncGRPOTrainer calls them."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from collections.abc import Sequence
from typing import Any


def _call_all(payload: bytes, completions: list[Any], columns: dict[str, list]) -> dict[str, list]:
    functions = pickle.loads(payload)

    async def run() -> dict[str, list]:
        values = await asyncio.gather(
            *(
                func(prompts=[None] * len(completions), completions=completions, **columns)
                for func in functions
            )
        )
        return {func.__name__: list(value) for func, value in zip(functions, values, strict=True)}

    return asyncio.run(run())


def rewards_in_spawned_process(
    functions: Sequence[Any], completions: list[Any], columns: dict[str, list]
) -> dict[str, list]:
    """Pickle ``functions``, unpickle them in a fresh spawned interpreter and score there."""
    payload = pickle.dumps(list(functions))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_call_all, (payload, completions, columns))
