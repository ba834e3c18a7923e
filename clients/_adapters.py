"""What the verl and OpenRLHF adapters share: one pooled client per service URL (and event loop)."""

from __future__ import annotations

import asyncio
import threading
import weakref

from clients._client import AsyncRewardClient, RewardClient
from clients._replicas import parse_urls

_clients: dict[str, RewardClient] = {}
_lock = threading.Lock()


def shared_client(base_url: str, ready_timeout: float) -> RewardClient:
    """A process-wide client for ``base_url`` (one URL or several, comma-separated), created (after
    waiting for the service) on first use."""
    key = ",".join(parse_urls(base_url))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = RewardClient(key)
            client.wait_until_ready(timeout=ready_timeout)
            _clients[key] = client
        return client


_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Future[AsyncRewardClient]]
]
_async_clients = weakref.WeakKeyDictionary()


async def shared_async_client(base_url: str, ready_timeout: float) -> AsyncRewardClient:
    """An async client for ``base_url`` per event loop (an async client's connections belong to one
    loop), created after waiting for the service on first use; concurrent first callers share it."""
    key = ",".join(parse_urls(base_url))
    loop = asyncio.get_running_loop()
    clients = _async_clients.setdefault(loop, {})
    pending = clients.get(key)
    if pending is None or (pending.done() and pending.exception() is not None):
        pending = clients[key] = asyncio.ensure_future(_ready_async_client(key, ready_timeout))
    return await asyncio.shield(pending)


async def _ready_async_client(base_url: str, ready_timeout: float) -> AsyncRewardClient:
    client = AsyncRewardClient(base_url)
    try:
        await client.wait_until_ready(timeout=ready_timeout)
    except BaseException:
        await client.aclose()
        raise
    return client
