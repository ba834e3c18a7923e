"""Errors that cross layers: the HTTP layer maps each to a precise status code."""

from __future__ import annotations


class Overloaded(Exception):
    """The service cannot take this work now (a full request gate or model queue); answered with 429.

    Scorers let it propagate instead of turning it into per-item errors, so the caller retries the
    whole request later rather than training on missing rewards.
    """

    retry_after_s: int = 1
