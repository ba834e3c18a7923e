"""Typed dependencies shared by the routers.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
costs a thread hand-off per dependency per request and dominated the cost of one-item requests.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from reward_service.engine import RewardEngine
from reward_service.settings import Settings


async def get_engine(request: Request) -> RewardEngine:
    return request.app.state.engine


async def get_request_gate(request: Request) -> asyncio.Semaphore:
    return request.app.state.request_gate


async def get_settings_from_app(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[RewardEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestGateDep = Annotated[asyncio.Semaphore, Depends(get_request_gate)]
