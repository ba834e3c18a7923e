"""Clients of the UniRG reward service, for any RL trainer.

``RewardClient`` / ``AsyncRewardClient`` speak to ``POST /v1/score``; ``clients.trl``, ``clients.verl``
and ``clients.openrlhf`` adapt them to those trainers' reward interfaces. Nothing here imports torch
(``clients.openrlhf.reward_func`` imports it when called, inside OpenRLHF where it is present).
"""

from clients._client import AsyncRewardClient, ProfileComponent, ProfileInfo, RewardClient
from clients._config import (
    DEFAULT_CLIENT_CONFIG,
    DEFAULT_FAILURE_POLICY,
    DEFAULT_LIMITS,
    DEFAULT_REPLICA_CONFIG,
    DEFAULT_RETRY_CONFIG,
    DEFAULT_TIMEOUT,
    ClientConfig,
    FailurePolicy,
    ReplicaConfig,
    RetryConfig,
)
from clients._errors import (
    FailureRateExceededError,
    RewardClientError,
    RewardRequestError,
    ServiceNotReadyError,
)
from clients._models import ComponentScore, ItemResult, RewardItem, ScoreResult

__all__ = [
    "DEFAULT_CLIENT_CONFIG",
    "DEFAULT_FAILURE_POLICY",
    "DEFAULT_LIMITS",
    "DEFAULT_REPLICA_CONFIG",
    "DEFAULT_RETRY_CONFIG",
    "DEFAULT_TIMEOUT",
    "AsyncRewardClient",
    "ClientConfig",
    "ComponentScore",
    "FailurePolicy",
    "FailureRateExceededError",
    "ItemResult",
    "ProfileComponent",
    "ProfileInfo",
    "ReplicaConfig",
    "RetryConfig",
    "RewardClient",
    "RewardClientError",
    "RewardItem",
    "RewardRequestError",
    "ScoreResult",
    "ServiceNotReadyError",
]
