"""Several replicas of the service behind one client: least outstanding requests, failing ones sit out.

A client given several base URLs (a list, or one comma-separated string such as
``UNIRG_REWARD_URL=http://a:8000,http://b:8000``) sends each request to the replica with the fewest
requests in flight. A replica whose request fails (a transport error or a 5xx) sits out for
``ReplicaConfig.cooldown`` seconds, doubling while it keeps failing up to ``max_cooldown``; the retry
goes to another replica. Once its time is up a replica is tried again with real work, and its first
success puts it fully back. When every replica is sitting out, the one due back first is tried, so a
single-URL client behaves exactly as before.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from clients._config import ReplicaConfig


def parse_urls(urls: str | Sequence[str]) -> list[str]:
    """Base URLs from a list or a comma-separated string, without trailing slashes or duplicates."""
    parts = urls.split(",") if isinstance(urls, str) else list(urls)
    cleaned = list(dict.fromkeys(part.strip().rstrip("/") for part in parts if part and part.strip()))
    if not cleaned:
        raise ValueError("no reward service URL given: pass one base URL or several, comma-separated")
    return cleaned


@dataclass(slots=True)
class Replica:
    url: str
    outstanding: int = 0
    failures: int = 0
    down_until: float = 0.0


class ReplicaSet:
    """Picks replicas and keeps their health; thread-safe (the sync client runs in trainer threads)."""

    def __init__(self, urls: str | Sequence[str], config: ReplicaConfig) -> None:
        self.replicas = [Replica(url) for url in parse_urls(urls)]
        self._config = config
        self._lock = threading.Lock()
        self._turn = 0

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    def pick(self) -> Replica:
        """The healthy replica with the fewest requests in flight; ties take turns."""
        now = time.monotonic()
        with self._lock:
            self._turn = (self._turn + 1) % len(self.replicas)
            order = self.replicas[self._turn :] + self.replicas[: self._turn]
            healthy = [replica for replica in order if replica.down_until <= now]
            if healthy:
                return min(healthy, key=lambda replica: replica.outstanding)
            return min(self.replicas, key=lambda replica: replica.down_until)

    @contextlib.contextmanager
    def in_flight(self, replica: Replica) -> Iterator[None]:
        with self._lock:
            replica.outstanding += 1
        try:
            yield
        finally:
            with self._lock:
                replica.outstanding -= 1

    def failed(self, replica: Replica) -> None:
        with self._lock:
            replica.failures += 1
            cooldown = min(self._config.cooldown * 2 ** (replica.failures - 1), self._config.max_cooldown)
            replica.down_until = time.monotonic() + cooldown

    def succeeded(self, replica: Replica) -> None:
        if replica.failures or replica.down_until:
            with self._lock:
                replica.failures = 0
                replica.down_until = 0.0

    def healthy_count(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(replica.down_until <= now for replica in self.replicas)
