"""Typed dependencies shared by the routers."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from reward_service.engine import RewardEngine
from reward_service.settings import Settings


def get_engine(request: Request) -> RewardEngine:
    return request.app.state.engine


def get_request_gate(request: Request) -> asyncio.Semaphore:
    return request.app.state.request_gate


def get_settings_from_app(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[RewardEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestGateDep = Annotated[asyncio.Semaphore, Depends(get_request_gate)]
