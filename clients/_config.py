"""Configuration objects of the reward clients, with module-level defaults.

Each object is frozen and keyword-only, so a training script states only what it changes::

    config = ClientConfig(retry=RetryConfig(max_attempts=8), max_batch_size=128)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

# Scoring a large batch with model scorers can take a while; connecting should not.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=60.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=60.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """When and how long to retry a request.

    Transport errors (refused or dropped connections, timeouts), 408, 429 and every 5xx are retried
    with exponential backoff and full jitter, so many trainer ranks do not retry in lockstep. A 429 or
    503 that carries ``Retry-After`` waits that long instead (capped by ``max_retry_after``).
    """

    max_attempts: int = 6
    """Attempts per request, the first included."""
    initial_backoff: float = 0.5
    """Seconds before the first retry (before jitter)."""
    max_backoff: float = 30.0
    """Upper bound of one backoff, in seconds."""
    max_retry_after: float = 120.0
    """Longest ``Retry-After`` the client honours, in seconds."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff and Retry-After bounds must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class FailurePolicy:
    """When unscored items stop training.

    An item is unscored when its request failed after every retry or the service returned a null reward
    for it (a required component failed). Over the last ``window`` items, once at least ``min_items``
    have been seen, a share of unscored items above ``max_failure_rate`` raises
    :class:`~clients.FailureRateExceededError`: a broken service should stop training loudly rather
    than let it run on rewards that are silently missing. ``max_failure_rate=None`` never raises.
    """

    max_failure_rate: float | None = 0.5
    window: int = 512
    min_items: int = 32

    def __post_init__(self) -> None:
        if self.max_failure_rate is not None and not 0.0 <= self.max_failure_rate <= 1.0:
            raise ValueError("max_failure_rate must be within [0, 1] or None")
        if self.window < 1 or self.min_items < 1:
            raise ValueError("window and min_items must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaConfig:
    """How a client given several service URLs treats a replica that fails (see ``clients._replicas``)."""

    cooldown: float = 5.0
    """Seconds a replica sits out after a transport error or 5xx; doubles while it keeps failing."""
    max_cooldown: float = 60.0
    """Longest time a failing replica sits out before it is tried again."""

    def __post_init__(self) -> None:
        if self.cooldown < 0 or self.max_cooldown < self.cooldown:
            raise ValueError("cooldown must not be negative and max_cooldown must be at least cooldown")


DEFAULT_RETRY_CONFIG = RetryConfig()
DEFAULT_REPLICA_CONFIG = ReplicaConfig()
DEFAULT_FAILURE_POLICY = FailurePolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Everything a reward client needs besides the service URL."""

    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    retry: RetryConfig = DEFAULT_RETRY_CONFIG
    failure_policy: FailurePolicy = DEFAULT_FAILURE_POLICY
    replicas: ReplicaConfig = DEFAULT_REPLICA_CONFIG
    max_batch_size: int = 256
    """Items per request; larger batches are split (and a 413 from the service splits further)."""
    max_concurrent_requests: int = 4
    """Chunks of one batch in flight at once (async client)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra request headers, e.g. an ``Authorization`` header for a gateway in front of the service."""
    api_key: str | None = None
    """The service's API key (sent as ``Authorization: Bearer``); None reads ``UNIRG_REWARD_API_KEY``."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_concurrent_requests < 1:
            raise ValueError("max_batch_size and max_concurrent_requests must be at least 1")


DEFAULT_CLIENT_CONFIG = ClientConfig()
