"""Typed dependencies shared by the routers.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
costs a thread hand-off per dependency per request and dominated the cost of one-item requests.
The scoring routes take one dependency, :data:`ScoringDep`, rather than one per object they use:
FastAPI solves each dependency with a call of its own (cache key, scopes, signature checks), which
cost about as much as the rest of a one-item request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from reward_service.engine import RewardEngine
from reward_service.errors import NotReady
from reward_service.load import LoadMeter
from reward_service.settings import Settings


async def get_engine(request: Request) -> RewardEngine:
    return request.app.state.engine


@dataclass(frozen=True, slots=True)
class Scoring:
    """What a scoring route works with: the engine, the settings, the request gate and the load meter."""

    engine: RewardEngine
    settings: Settings
    gate: asyncio.Semaphore
    load: LoadMeter


async def scoring(request: Request) -> Scoring:
    """The app's scoring objects; new scoring work is refused once shutdown began (in-flight work finishes).

    As a dependency it runs before the body is validated, so a draining service answers 503 even to
    a malformed item."""
    state = request.app.state
    if state.draining:
        raise NotReady("the service is shutting down; retry against another replica or after the restart")
    return Scoring(state.engine, state.settings, state.request_gate, state.load)


EngineDep = Annotated[RewardEngine, Depends(get_engine)]
ScoringDep = Annotated[Scoring, Depends(scoring)]
