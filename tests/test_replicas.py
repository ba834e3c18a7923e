"""Several service replicas behind one client: spread, failover, and a replica coming back.

End to end: two loopback stand-ins (tests/flaky_server.py) in front of a real ``unirg serve``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from flaky_server import FlakyServer, flaky_server
from waiting import wait_until

from clients import AsyncRewardClient, ClientConfig, ReplicaConfig, RetryConfig, RewardClient
from clients._adapters import shared_client
from clients._replicas import parse_urls

FAST_RETRY = RetryConfig(max_attempts=4, initial_backoff=0.001, max_backoff=0.01)
REFERENCE = "Findings: Small left pleural effusion. Impression: Small left effusion."
CANDIDATES = [f"Findings: Left pleural effusion. Study {i}." for i in range(8)]


@pytest.fixture
def two_replicas(default_service: str) -> Iterator[tuple[FlakyServer, FlakyServer]]:
    with (
        httpx.Client(base_url=default_service) as upstream,
        flaky_server(upstream) as first,
        flaky_server(upstream) as second,
    ):
        yield first, second


def config(cooldown: float = 30.0) -> ClientConfig:
    return ClientConfig(
        retry=FAST_RETRY, max_batch_size=2, replicas=ReplicaConfig(cooldown=cooldown, max_cooldown=60)
    )


def test_urls_come_as_a_list_or_comma_separated() -> None:
    assert parse_urls(" http://a:1/, http://b:2 ,http://a:1") == ["http://a:1", "http://b:2"]
    assert parse_urls(["http://a:1"]) == ["http://a:1"]
    with pytest.raises(ValueError, match="no reward service URL"):
        parse_urls(" , ")


def test_requests_spread_over_the_replicas(two_replicas: tuple[FlakyServer, FlakyServer]) -> None:
    first, second = two_replicas
    urls = f"{first.base_url},{second.base_url}"
    with RewardClient(urls, config=config()) as client:
        result = client.score(CANDIDATES, [REFERENCE] * len(CANDIDATES))
    assert result.unscored_count == 0
    assert len(first.score_attempts()) == len(second.score_attempts()) == 2


def test_a_failing_replica_sits_out_and_its_work_is_retried_elsewhere(
    two_replicas: tuple[FlakyServer, FlakyServer],
) -> None:
    first, second = two_replicas
    first.default_action = "500"
    with RewardClient([first.base_url, "http://127.0.0.1:9", second.base_url], config=config()) as client:
        result = client.score(CANDIDATES, [REFERENCE] * len(CANDIDATES))
        healthy = client.replicas.healthy_count()
    assert result.unscored_count == 0 and not any(item.failed for item in result.items)
    assert len(first.score_attempts()) == 1  # failed once, then sat out
    assert healthy == 1  # the 500 and the refused connection both sit out
    assert sum(attempt.items or 0 for attempt in second.score_attempts()) == len(CANDIDATES)


async def test_a_replica_comes_back_when_it_is_healthy_again(
    two_replicas: tuple[FlakyServer, FlakyServer],
) -> None:
    first, second = two_replicas
    first.default_action = "drop"
    # The cooldown outlasts a scoring on a loaded machine (at 0.2 s the replica was sometimes back already).
    async with AsyncRewardClient([first.base_url, second.base_url], config=config(cooldown=1.0)) as client:
        assert (await client.score(CANDIDATES[:4], [REFERENCE] * 4)).unscored_count == 0
        dropped = len(first.score_attempts())
        assert dropped == 1 and client.replicas.healthy_count() == 1
        first.default_action = "ok"
        wait_until(lambda: client.replicas.healthy_count() == 2, 10, "the dropped replica's cooldown ends")
        assert (await client.score(CANDIDATES, [REFERENCE] * len(CANDIDATES))).unscored_count == 0
        assert client.replicas.healthy_count() == 2
    assert [attempt.action for attempt in first.score_attempts()[dropped:]] == ["ok", "ok"]


def test_adapters_take_the_replica_list_from_the_environment(
    two_replicas: tuple[FlakyServer, FlakyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients.verl import compute_score_batch

    first, second = two_replicas
    monkeypatch.setenv("UNIRG_REWARD_URL", f"{first.base_url}, {second.base_url}")
    results = compute_score_batch(["iu"] * 4, CANDIDATES[:4], [REFERENCE] * 4)
    assert all(result["unscored"] == 0.0 for result in results)
    client = shared_client(f"{first.base_url},{second.base_url}", 5)
    assert client.replicas.urls == [first.base_url, second.base_url]
