"""Exceptions of the reward clients; all derive from :class:`RewardClientError`."""

from __future__ import annotations


class RewardClientError(Exception):
    """Base of every error the reward clients raise."""


class RewardRequestError(RewardClientError):
    """The service refused a request as malformed (a 4xx other than 408/429); retrying cannot help.

    The message carries the service's explanation of what to fix.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"reward service answered {status_code}: {message}")
        self.status_code = status_code


class ServiceNotReadyError(RewardClientError):
    """``wait_until_ready`` ran out of time; the message holds the service's last answer."""


class FailureRateExceededError(RewardClientError):
    """Too many recent items went unscored: the reward service is broken, so training must stop."""
