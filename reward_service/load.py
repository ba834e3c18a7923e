"""How loaded the service is, so that a 429 or 503 can say how long to wait (``Retry-After``).

The meter counts the items of requests in flight and the items finished over the last
``window_s`` seconds. Draining the backlog at the recent pace takes ``in_flight / rate`` seconds:
that is the ``Retry-After`` a refused client gets, so that a trainer with many ranks spreads its
retries over the time the service actually needs instead of knocking again every second.
"""

from __future__ import annotations

import math
import time
from collections import deque

#: Bounds of ``Retry-After``: never 0 (a tight retry loop), never so long that a trainer idles.
MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60
#: With nothing finished lately there is no pace to go by: a short wait, then a new estimate.
UNKNOWN_PACE_RETRY_AFTER_S = 5


class LoadMeter:
    """Items in flight and recent throughput of the scoring routes."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.items_in_flight = 0
        self._finished: deque[tuple[float, int]] = deque()

    def started(self, items: int) -> None:
        self.items_in_flight += items

    def finished(self, items: int) -> None:
        self.items_in_flight -= items
        now = time.monotonic()
        self._finished.append((now, items))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._finished and self._finished[0][0] < now - self.window_s:
            self._finished.popleft()

    def items_per_second(self) -> float | None:
        """Items finished per second over the window; None before anything finished in it."""
        now = time.monotonic()
        self._forget(now)
        if not self._finished:
            return None
        span = max(now - self._finished[0][0], 1.0)
        return sum(items for _, items in self._finished) / span

    def retry_after_s(self, backlog: int | None = None) -> int:
        """Seconds until the backlog (default: the items in flight) is likely done, within the bounds."""
        backlog = self.items_in_flight if backlog is None else backlog
        rate = self.items_per_second()
        if rate is None:
            # Nothing finished lately: the work in flight is slow or the service just started.
            return UNKNOWN_PACE_RETRY_AFTER_S if backlog else MIN_RETRY_AFTER_S
        return max(MIN_RETRY_AFTER_S, min(MAX_RETRY_AFTER_S, math.ceil(backlog / rate)))
