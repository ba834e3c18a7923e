"""The failure-rate guard: a broken reward service stops training loudly."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from clients._config import FailurePolicy
from clients._errors import FailureRateExceededError
from clients._models import ItemResult


class FailureTracker:
    """Remembers which of the last ``policy.window`` items went unscored; thread-safe."""

    def __init__(self, policy: FailurePolicy) -> None:
        self._policy = policy
        self._recent: deque[bool] = deque(maxlen=policy.window)
        self._lock = threading.Lock()

    @property
    def failure_rate(self) -> float:
        with self._lock:
            return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def record(self, items: Sequence[ItemResult]) -> None:
        """Count a batch's items; raise when the recent share of unscored items is over the limit."""
        limit = self._policy.max_failure_rate
        with self._lock:
            self._recent.extend(item.reward is None for item in items)
            seen = len(self._recent)
            unscored = sum(self._recent)
        if limit is None or seen < self._policy.min_items or unscored / seen <= limit:
            return
        reasons = sorted({error for item in items if item.reward is None for error in item.errors})
        raise FailureRateExceededError(
            f"{unscored} of the last {seen} items got no reward ({unscored / seen:.0%}, limit {limit:.0%}); "
            f"the reward service is failing, so training stops here. Recent reasons: {'; '.join(reasons[:5])}. "
            "Check the service's log and /readyz; FailurePolicy(max_failure_rate=...) sets the limit."
        )
