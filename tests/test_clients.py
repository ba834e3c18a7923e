"""RewardClient and AsyncRewardClient on the service's app in this process, directly and through a
stand-in that fails on demand (tests/flaky_server.py, as an ``httpx.MockTransport``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flaky_server import FlakyServer
from in_process import InProcessService
from live_service import REPO_ROOT, free_port

from clients import (
    AsyncRewardClient,
    ClientConfig,
    FailurePolicy,
    FailureRateExceededError,
    RetryConfig,
    RewardClient,
    RewardItem,
    RewardRequestError,
    ServiceNotReadyError,
)

REFERENCES = [
    "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion.",
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process.",
    "Findings: Cardiomegaly with mild pulmonary edema. Impression: Mild congestive heart failure.",
]
CANDIDATES = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Lungs are clear. Impression: Normal chest.",
    "Findings: Enlarged heart. Impression: Cardiomegaly.",
]

# Retries in these tests back off for milliseconds; the policy under test is the same.
FAST_RETRY = RetryConfig(max_attempts=5, initial_backoff=0.001, max_backoff=0.01)
NO_LIMIT = FailurePolicy(max_failure_rate=None)


def direct_score(service: httpx.Client, candidates: list[str], references: list[str]) -> dict:
    """The service's own answer, bypassing the client."""
    items = [{"reference": r, "candidate": c} for c, r in zip(candidates, references, strict=True)]
    response = service.post("/v1/score", json={"items": items})
    response.raise_for_status()
    return response.json()


def batch(size: int) -> tuple[list[str], list[str]]:
    candidates = [CANDIDATES[i % 3] + f" Study {i}." for i in range(size)]
    references = [REFERENCES[i % 3] for i in range(size)]
    return candidates, references


@pytest.fixture
def service(default_app: InProcessService) -> Iterator[httpx.Client]:
    """Requests straight to the app, for the answers the clients must reproduce."""
    with default_app.client() as client:
        yield client


@pytest.fixture
def flaky(service: httpx.Client) -> FlakyServer:
    return FlakyServer(upstream=service)


def sync_client(target: InProcessService | FlakyServer, **options: Any) -> RewardClient:
    return RewardClient(target.base_url, transport=target.transport, **options)


def async_client(target: InProcessService | FlakyServer, **options: Any) -> AsyncRewardClient:
    transport = target.transport if isinstance(target, FlakyServer) else target.async_transport
    return AsyncRewardClient(target.base_url, transport=transport, **options)


def assert_matches_service(result, expected: dict) -> None:
    assert result.profile == expected["profile"]
    assert result.profile_hash == expected["profile_hash"]
    assert len(result.items) == len(expected["items"])
    for item, raw in zip(result.items, expected["items"], strict=True):
        assert item.reward == pytest.approx(raw["reward"])
        assert not item.failed
        assert item.scores == pytest.approx({key: value["score"] for key, value in raw["components"].items()})


def test_scores_equal_the_service_answer(default_app: InProcessService, service: httpx.Client) -> None:
    with sync_client(default_app) as client:
        result = client.score(CANDIDATES, REFERENCES)
    assert_matches_service(result, direct_score(service, CANDIDATES, REFERENCES))
    # A candidate identical to its reference must beat an unrelated one under any overlap reward.
    with sync_client(default_app) as client:
        same, other = client.score([REFERENCES[0], REFERENCES[1]], [REFERENCES[0], REFERENCES[0]]).rewards
    assert same is not None and other is not None and same > other


async def test_async_client_equals_the_service_answer(
    default_app: InProcessService, service: httpx.Client
) -> None:
    candidates, references = batch(10)
    config = ClientConfig(max_batch_size=3, max_concurrent_requests=2)
    async with async_client(default_app, config=config) as client:
        ready = await client.wait_until_ready(timeout=10)
        result = await client.score(candidates, references)
    assert ready["ready"] is True
    assert_matches_service(result, direct_score(service, candidates, references))


def test_items_and_contexts_are_sent(default_app: InProcessService, service: httpx.Client) -> None:
    items = [
        RewardItem(
            reference=REFERENCES[0], candidate=CANDIDATES[0], id="s1", context={"indication": "Cough."}
        ),
        {"reference": REFERENCES[1], "candidate": CANDIDATES[1], "id": "s2", "prior_report": REFERENCES[2]},
    ]
    with sync_client(default_app) as client:
        result = client.score_items(items)
    assert [item.id for item in result.items] == ["s1", "s2"]
    assert all(item.reward is not None for item in result.items)


def test_retries_transport_errors_and_retryable_statuses(flaky: FlakyServer) -> None:
    flaky.plan(["drop", "500", "408", "502", "ok"])
    with sync_client(flaky, config=ClientConfig(retry=FAST_RETRY)) as client:
        result = client.score(CANDIDATES, REFERENCES)
    assert [attempt.action for attempt in flaky.score_attempts()] == ["drop", "500", "408", "502", "ok"]
    assert_matches_service(result, direct_score(flaky.upstream, CANDIDATES, REFERENCES))


async def test_async_client_retries(flaky: FlakyServer) -> None:
    flaky.plan(["503", "drop", "ok"])
    async with async_client(flaky, config=ClientConfig(retry=FAST_RETRY)) as client:
        result = await client.score(CANDIDATES, REFERENCES)
    assert len(flaky.score_attempts()) == 3
    assert_matches_service(result, direct_score(flaky.upstream, CANDIDATES, REFERENCES))


def test_retry_after_is_honoured(flaky: FlakyServer, caplog: pytest.LogCaptureFixture) -> None:
    # Jittered backoff is capped at 0.01 s here, so a 1 s wait can only come from Retry-After.
    flaky.plan(["429:1", "ok"])
    caplog.set_level(logging.WARNING, logger="clients")
    with sync_client(flaky, config=ClientConfig(retry=FAST_RETRY)) as client:
        result = client.score(CANDIDATES[:1], REFERENCES[:1])
    assert result.rewards[0] is not None
    assert len(flaky.score_attempts()) == 2
    assert any("HTTP 429" in r.message and "retrying in 1.00s" in r.message for r in caplog.records)


def test_exhausted_retries_give_none_never_zero(flaky: FlakyServer, caplog: pytest.LogCaptureFixture) -> None:
    flaky.default_action = "500"
    retry = RetryConfig(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)
    with sync_client(flaky, config=ClientConfig(retry=retry, failure_policy=NO_LIMIT)) as client:
        result = client.score(CANDIDATES, REFERENCES)
    assert len(flaky.score_attempts()) == 3
    assert result.rewards == [None, None, None]
    assert all(item.failed for item in result.items)
    assert all("HTTP 500" in item.errors[0] for item in result.items)
    assert result.profile_hash is None
    assert any("failed after retries" in record.message for record in caplog.records)


def test_failure_rate_over_the_limit_stops_training(flaky: FlakyServer) -> None:
    flaky.default_action = "503"
    config = ClientConfig(
        retry=RetryConfig(max_attempts=1),
        failure_policy=FailurePolicy(max_failure_rate=0.5, window=8, min_items=4),
    )
    with sync_client(flaky, config=config) as client:
        # Two failed items: below min_items, so the gap is reported as None and training goes on.
        assert client.score(CANDIDATES[:2], REFERENCES[:2]).rewards == [None, None]
        with pytest.raises(FailureRateExceededError, match="4 of the last 4 items got no reward"):
            client.score(CANDIDATES[:2], REFERENCES[:2])


def test_a_healthy_service_keeps_the_failure_rate_low(flaky: FlakyServer) -> None:
    config = ClientConfig(
        retry=RetryConfig(max_attempts=1), failure_policy=FailurePolicy(max_failure_rate=0.5, min_items=2)
    )
    flaky.plan(["503"])
    with sync_client(flaky, config=config) as client:
        client.score(CANDIDATES[:1], REFERENCES[:1])  # 1 of 1 failed: below min_items
        for _ in range(3):
            client.score(CANDIDATES, REFERENCES)  # then 9 scored: 10% unscored, under the limit
        assert client.failures.failure_rate == pytest.approx(0.1)


def test_large_batches_are_chunked_in_order(flaky: FlakyServer) -> None:
    candidates, references = batch(7)
    with sync_client(flaky, config=ClientConfig(max_batch_size=3)) as client:
        result = client.score(candidates, references)
    assert [attempt.items for attempt in flaky.score_attempts()] == [3, 3, 1]
    assert [item.id for item in result.items] == [str(i) for i in range(7)]
    expected = direct_score(flaky.upstream, candidates, references)
    assert result.rewards == pytest.approx([item["reward"] for item in expected["items"]])


def test_413_splits_the_chunk(flaky: FlakyServer) -> None:
    flaky.default_action = "413:2"  # the service takes at most 2 items per request
    candidates, references = batch(5)
    with sync_client(flaky, config=ClientConfig(max_batch_size=8)) as client:
        result = client.score(candidates, references)
    attempts = [(a.items, a.action) for a in flaky.score_attempts()]
    assert attempts == [(5, "413"), (2, "ok"), (3, "413"), (1, "ok"), (2, "ok")]
    expected = direct_score(flaky.upstream, candidates, references)
    assert result.rewards == pytest.approx([item["reward"] for item in expected["items"]])


def test_a_malformed_request_raises_without_retrying(flaky: FlakyServer) -> None:
    config = ClientConfig(retry=FAST_RETRY)
    with (
        sync_client(flaky, config=config) as client,
        pytest.raises(RewardRequestError, match="profile 'no-such-profile' is not loaded") as error,
    ):
        client.score(CANDIDATES, REFERENCES, profile="no-such-profile")
    assert error.value.status_code == 404
    assert len(flaky.score_attempts()) == 1


def test_mismatched_lists_are_refused(default_app: InProcessService, service: httpx.Client) -> None:
    with sync_client(default_app) as client, pytest.raises(ValueError, match="references has 2 entries"):
        client.score(CANDIDATES, REFERENCES[:2])


def test_wait_until_ready(flaky: FlakyServer, default_app: InProcessService, service: httpx.Client) -> None:
    flaky.plan(["503", "503"])  # /readyz says "not ready" twice
    with sync_client(flaky) as client:
        ready = client.wait_until_ready(timeout=30, interval=0.01)
    assert ready["ready"] is True and ready["default_profile"] == "default"
    assert [a.action for a in flaky.attempts if a.path == "/readyz"] == ["503", "503", "ok"]
    with sync_client(default_app) as client:
        info = client.profile_info()
    scored = direct_score(service, CANDIDATES[:1], REFERENCES[:1])
    assert info.name == "default" and info.profile_hash == scored["profile_hash"]
    assert set(info.weighted_keys) <= set(scored["items"][0]["components"])
    assert info.weighted_keys


def test_wait_until_ready_times_out_when_nothing_listens() -> None:
    with (
        RewardClient(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(ServiceNotReadyError, match=r"not ready after 0\.2s"),
    ):
        client.wait_until_ready(timeout=0.2, interval=0.05)


def test_clients_do_not_import_torch() -> None:
    code = (
        "import sys, clients, clients.trl, clients.verl, clients.openrlhf; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


async def test_async_client_splits_on_413_and_keeps_order(flaky: FlakyServer) -> None:
    flaky.default_action = "413:2"
    candidates, references = batch(7)
    config = ClientConfig(max_batch_size=4, max_concurrent_requests=2)
    async with async_client(flaky, config=config) as client:
        result = await client.score(candidates, references)
    assert [item.id for item in result.items] == [str(i) for i in range(7)]
    answered = [attempt.items for attempt in flaky.score_attempts() if attempt.action == "ok"]
    assert sum(answered) == 7 and max(answered) <= 2
    expected = direct_score(flaky.upstream, candidates, references)
    assert result.rewards == pytest.approx([item["reward"] for item in expected["items"]])
