"""Typed dependencies shared by the routers.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
costs a thread hand-off per dependency per request and dominated the cost of one-item requests.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from reward_service.engine import RewardEngine
from reward_service.errors import NotReady
from reward_service.load import LoadMeter
from reward_service.settings import Settings


async def get_engine(request: Request) -> RewardEngine:
    return request.app.state.engine


async def get_request_gate(request: Request) -> asyncio.Semaphore:
    return request.app.state.request_gate


async def get_settings_from_app(request: Request) -> Settings:
    return request.app.state.settings


async def get_load(request: Request) -> LoadMeter:  # async: no thread-pool hop per request
    return request.app.state.load


async def refuse_while_draining(request: Request) -> None:
    """New scoring work is refused once shutdown began; work in flight is finished."""
    if request.app.state.draining:
        raise NotReady("the service is shutting down; retry against another replica or after the restart")


EngineDep = Annotated[RewardEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestGateDep = Annotated[asyncio.Semaphore, Depends(get_request_gate)]
LoadDep = Annotated[LoadMeter, Depends(get_load)]
