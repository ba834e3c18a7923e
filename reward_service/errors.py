"""Errors that cross layers: the HTTP layer maps each to a precise status code."""

from __future__ import annotations


class Overloaded(Exception):
    """The service cannot take this work now (a full request gate or model queue); answered with 429.

    Scorers let it propagate instead of turning it into per-item errors, so the caller retries the
    whole request later rather than training on missing rewards. The HTTP layer computes its
    ``Retry-After`` from the service's load (:mod:`reward_service.load`).
    """


class NotReady(Exception):
    """The service cannot score yet (profiles still loading) or any more (draining); answered 503
    with ``Retry-After``, which clients retry."""
