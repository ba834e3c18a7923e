"""One sample per call: the engine and the async client merge same-turn calls, and nothing else changes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from in_process import InProcessService
from prometheus_client import REGISTRY

from clients import AsyncRewardClient, ClientConfig, FailurePolicy, RewardItem, RewardRequestError
from reward_service.engine import RewardEngine
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings
from unirg.common.merging import CallMerger

REFERENCES = [
    "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion.",
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process.",
    "Findings: Cardiomegaly with mild pulmonary edema. Impression: Mild congestive heart failure.",
]
CANDIDATES = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Lungs are clear. Impression: Normal chest.",
    "Findings: Enlarged heart. No effusion. Impression: Cardiomegaly.",
    "Right upper lobe mass. Impression: Mass.",
]


def pairs(count: int) -> list[tuple[str, str]]:
    return [(REFERENCES[i % 3], CANDIDATES[i % 4] + f" Study {i}.") for i in range(count)]


def observations(component: str) -> float:
    value = REGISTRY.get_sample_value("unirg_component_latency_seconds_count", {"component": component})
    return value or 0.0


async def test_engine_scores_concurrent_calls_as_one_batch_with_the_same_rewards() -> None:
    engine = RewardEngine(Settings())
    await engine.load("default")
    try:
        items = [
            ScoreItem(str(i), reference, candidate) for i, (reference, candidate) in enumerate(pairs(24))
        ]
        batched = await engine.score(items)
        before = observations("rouge_l")
        singles = await asyncio.gather(*(engine.score([item]) for item in items))
        # One merged batch ran each component once for all 24 calls.
        assert observations("rouge_l") - before == 1
    finally:
        await engine.close()
    for single, expected in zip(singles, batched.items, strict=True):
        assert len(single.items) == 1
        assert single.items[0].item.id == expected.item.id
        assert single.items[0].composite.reward == expected.composite.reward


async def test_merger_splits_groups_at_max_items_and_fails_only_the_group_that_raised() -> None:
    seen: list[int] = []

    async def run(key: str, calls: list[list[int]]) -> list[int]:
        seen.append(sum(len(items) for items in calls))
        if any(0 in items for items in calls):
            raise ValueError("zero")
        return [sum(items) for items in calls]

    merger: CallMerger[str, int, int] = CallMerger(run, max_items=4)
    outcomes = await asyncio.gather(
        *(merger.submit("k", [value, value]) for value in (1, 2, 0, 3, 4)), return_exceptions=True
    )
    assert seen == [4, 4, 2]  # groups of at most 4 items, in call order
    assert outcomes[:2] == [2, 4]
    assert isinstance(outcomes[2], ValueError) and isinstance(outcomes[3], ValueError)
    assert outcomes[4] == 8


class CountingTransport(httpx.AsyncBaseTransport):
    """A transport that counts the POST requests it passes on to ``inner``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_client_sends_concurrent_one_sample_calls_as_one_request(default_app: InProcessService) -> None:
    transport = CountingTransport(default_app.async_transport)
    items = [RewardItem(reference=r, candidate=c) for r, c in pairs(16)]
    async with AsyncRewardClient(default_app.base_url, transport=transport) as client:
        expected = await client.score_items(items)
        assert transport.posts == 1
        singles = await asyncio.gather(*(client.score_items([item]) for item in items))
        assert transport.posts == 2
        named = await asyncio.gather(
            *(
                client.score_items([RewardItem(reference=r, candidate=c, id=f"s{i}")])
                for i, (r, c) in enumerate(pairs(3))
            )
        )
    for single, item in zip(singles, expected.items, strict=True):
        assert [result.id for result in single.items] == ["0"]  # numbered within the caller's own call
        assert single.rewards == [pytest.approx(item.reward)]
        assert single.profile_hash == expected.profile_hash
    assert [result.items[0].id for result in named] == ["s0", "s1", "s2"]


async def test_a_refused_call_does_not_fail_the_calls_merged_with_it(default_app: InProcessService) -> None:
    good = [RewardItem(reference=r, candidate=c) for r, c in pairs(3)]
    bad = RewardItem(reference="Effusion. " * 3000, candidate="Effusion.")  # over UNIRG_MAX_REPORT_CHARS
    config = ClientConfig(failure_policy=FailurePolicy(max_failure_rate=None))
    async with AsyncRewardClient(
        default_app.base_url, config=config, transport=default_app.async_transport
    ) as client:
        outcomes = await asyncio.gather(
            client.score_items([good[0]]),
            client.score_items([bad]),
            client.score_items(good[1:]),
            return_exceptions=True,
        )
    assert isinstance(outcomes[1], RewardRequestError) and "UNIRG_MAX_REPORT_CHARS" in str(outcomes[1])
    assert all(reward is not None for reward in outcomes[0].rewards + outcomes[2].rewards)
    assert len(outcomes[2].items) == 2


async def test_the_service_answers_many_concurrent_one_item_requests_like_one_batch(
    default_app: InProcessService,
) -> None:
    body = {"items": [{"reference": r, "candidate": c} for r, c in pairs(32)]}
    async with default_app.async_client() as http:
        expected = (await http.post("/v1/score", json=body)).json()
        answers = await asyncio.gather(
            *(
                http.post("/v1/score", json={"items": [item], "return_details": False})
                for item in body["items"]
            )
        )
    for answer, item in zip(answers, expected["items"], strict=True):
        assert answer.status_code == 200
        scored = answer.json()["items"]
        assert len(scored) == 1 and scored[0]["id"] == "0"
        assert scored[0]["reward"] == pytest.approx(item["reward"])
