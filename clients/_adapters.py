"""What the verl and OpenRLHF adapters share: one pooled client per service URL."""

from __future__ import annotations

import threading

from clients._client import RewardClient
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
