"""One reading of the HTTP ``Retry-After`` header (RFC 9110, section 10.2.3).

The header holds either delta-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2026 07:28:00 GMT``).
The clients read it from the reward service's 429/503 answers, the judge backend from the judge
endpoint's; both bound the wait, since a server may ask for more than a trainer should sleep.
"""

from __future__ import annotations

import math
import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, *, max_s: float, now: float | None = None) -> float | None:
    """Seconds to wait that a ``Retry-After`` value asks for, in ``[0, max_s]``; None when it says nothing.

    Delta-seconds may carry a fraction (``1.5``, which some servers send); a negative number or a
    date in the past means 0, a longer wait is cut to ``max_s``. A date without a zone is read as
    GMT, as the RFC writes every HTTP-date. ``now`` (seconds since the epoch, :func:`time.time` by
    default) is what a date is counted from. A missing, empty or unreadable value gives None, so
    the caller falls back to its own backoff.
    """
    if max_s < 0:
        raise ValueError(f"max_s must be >= 0, got {max_s}")
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until_date(value, time.time() if now is None else now)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), max_s)


def _seconds_until_date(value: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now
