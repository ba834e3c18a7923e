"""The retry policy shared by the sync and async clients, built on tenacity."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from clients._config import RetryConfig
from unirg.common.retry_after import parse_retry_after

logger = logging.getLogger("clients")


def is_retryable_status(status_code: int) -> bool:
    """408 (request timeout), 429 (service full) and every 5xx may succeed when tried again."""
    return status_code in (408, 429) or 500 <= status_code <= 599


def describe_outcome(retry_state: RetryCallState) -> str:
    """Why an attempt failed, for logs and for the ``errors`` of items that end up unscored."""
    outcome = retry_state.outcome
    if outcome is None:
        return "no attempt made"
    if outcome.failed:
        exc = outcome.exception()
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return describe_response(outcome.result())


def describe_response(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}: {text[:300]}" if text else f"HTTP {response.status_code}"


class _WaitRetryAfter(wait_base):
    """Honour the service's ``Retry-After``; otherwise back off exponentially with full jitter."""

    def __init__(self, config: RetryConfig) -> None:
        self._fallback = wait_random_exponential(multiplier=config.initial_backoff, max=config.max_backoff)
        self._cap = config.max_retry_after

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            delay = parse_retry_after(outcome.result().headers.get("Retry-After"), max_s=self._cap)
            if delay is not None:
                return delay
        return self._fallback(retry_state)


def _log_retry(retry_state: RetryCallState) -> None:
    delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.warning(
        "reward request attempt %d failed (%s); retrying in %.2fs",
        retry_state.attempt_number,
        describe_outcome(retry_state),
        delay,
    )


def _return_last_response(retry_state: RetryCallState) -> httpx.Response:
    # Out of attempts: hand the last response back for the caller to report, or re-raise the last error.
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def retry_options(config: RetryConfig) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` around one HTTP exchange."""
    return {
        "stop": stop_after_attempt(config.max_attempts),
        "wait": _WaitRetryAfter(config),
        "retry": retry_if_exception_type(httpx.TransportError)
        | retry_if_result(lambda response: is_retryable_status(response.status_code)),
        "before_sleep": _log_retry,
        "retry_error_callback": _return_last_response,
    }
