"""The verl adapter (``clients.verl``) against the service, called the way verl calls it.

The adapter takes a URL: a loopback relay (tests/flaky_server.py) passes its requests to the service's
app in this process. tests/verl_loop/ runs it inside verl's own Reward Loop, in verl's environment
(``make test-verl``)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from flaky_server import FlakyServer
from in_process import InProcessService, start_in_process

from clients import RewardClientError
from clients.verl import compute_score, compute_score_async, compute_score_batch

REFERENCE_A = "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion."
REFERENCE_B = (
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process."
)
SOLUTIONS = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Heart size normal. Impression: Normal chest.",
    "Findings: Lungs are clear. No pneumothorax. Impression: No acute process.",
    "Findings: Cardiomegaly. Impression: Heart failure.",
]
GROUND_TRUTHS = [REFERENCE_A, REFERENCE_A, REFERENCE_B, REFERENCE_B]
# Over the 300-character limit of the service below, so the service gives it a null reward.
OVERSIZE = "Findings: " + "Stable appearance of the chest. " * 12


def direct(service: httpx.Client, candidates: list[str], references: list[str]) -> list[dict]:
    items = [{"reference": r, "candidate": c} for c, r in zip(candidates, references, strict=True)]
    response = service.post("/v1/score", json={"items": items})
    response.raise_for_status()
    return response.json()["items"]


@pytest.fixture
def proxy(default_app: InProcessService, relay) -> FlakyServer:
    return relay(default_app)


@pytest.fixture(scope="module")
def short_reports() -> Iterator[InProcessService]:
    """A service that takes reports of at most 300 characters, so OVERSIZE gets a null reward."""
    with start_in_process(env={"UNIRG_MAX_REPORT_CHARS": "300"}) as service:
        yield service


def test_compute_score_returns_reward_and_components(proxy: FlakyServer) -> None:
    expected = direct(proxy.upstream, SOLUTIONS[:1], GROUND_TRUTHS[:1])[0]
    result = compute_score("iu_xray", SOLUTIONS[0], GROUND_TRUTHS[0], {"index": 0}, base_url=proxy.base_url)
    assert result["score"] == pytest.approx(expected["reward"])
    for key, component in expected["components"].items():
        assert result[key] == pytest.approx(component["score"])
    assert result["unscored"] == 0.0


def test_service_location_from_environment_and_extra_info(
    proxy: FlakyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIRG_REWARD_URL", "http://127.0.0.1:1")  # overridden by extra_info below
    monkeypatch.setenv("UNIRG_REWARD_PROFILE", "default")
    info = {
        "reward_service_url": proxy.base_url,
        "indication": "Dyspnea.",
        "prior_report": "Findings: Normal chest.",
        "image": b"\x89PNG not sent",
    }
    result = compute_score("iu_xray", SOLUTIONS[0], GROUND_TRUTHS[0], info)
    (attempt,) = proxy.score_attempts()
    sent = json.loads(attempt.body)
    assert sent["profile"] == "default"
    assert sent["items"][0]["context"] == {"indication": "Dyspnea."}
    assert sent["items"][0]["prior_report"] == "Findings: Normal chest."
    assert "image" not in sent["items"][0]
    assert result["score"] == pytest.approx(
        direct(proxy.upstream, SOLUTIONS[:1], GROUND_TRUTHS[:1])[0]["reward"]
    )

    monkeypatch.setenv("UNIRG_REWARD_URL", proxy.base_url)
    compute_score("iu_xray", SOLUTIONS[1], GROUND_TRUTHS[1], None)
    assert len(proxy.score_attempts()) == 2


def test_batched_variant_as_verls_batch_reward_manager_calls_it(proxy: FlakyServer) -> None:
    # verl passes non-tensor batch fields as numpy object arrays.
    results = compute_score_batch(
        data_sources=np.array(["iu_xray"] * 4, dtype=object),
        solution_strs=SOLUTIONS,
        ground_truths=GROUND_TRUTHS,
        extra_infos=np.array([{"index": i // 2} for i in range(4)], dtype=object),
        base_url=proxy.base_url,
    )
    assert len(proxy.score_attempts()) == 1
    expected = direct(proxy.upstream, SOLUTIONS, GROUND_TRUTHS)
    assert [r["score"] for r in results] == pytest.approx([item["reward"] for item in expected])
    assert len({tuple(sorted(r)) for r in results}) == 1  # verl stacks every key across the batch
    assert all(r["unscored"] == 0.0 for r in results)


def test_unscored_items_are_filled_from_their_group_never_zero(
    short_reports: InProcessService, relay
) -> None:
    served = relay(short_reports)
    base_url = served.base_url
    solutions = [SOLUTIONS[0], OVERSIZE, SOLUTIONS[2], SOLUTIONS[3]]
    infos = [{"index": i // 2} for i in range(4)]
    results = compute_score_batch(["iu_xray"] * 4, solutions, GROUND_TRUTHS, infos, base_url=base_url)
    scored = direct(
        served.upstream, [SOLUTIONS[0], SOLUTIONS[2], SOLUTIONS[3]], [REFERENCE_A, REFERENCE_B, REFERENCE_B]
    )
    # The oversize completion shares its prompt with the first: it gets that one's reward (zero advantage).
    assert [r["unscored"] for r in results] == [0.0, 1.0, 0.0, 0.0]
    assert results[1]["score"] == pytest.approx(scored[0]["reward"])
    assert results[1]["score"] != 0.0
    assert [results[i]["score"] for i in (0, 2, 3)] == pytest.approx([item["reward"] for item in scored])
    with pytest.raises(RewardClientError, match="none of the 2 items"):
        compute_score_batch(["iu_xray"] * 2, [OVERSIZE] * 2, GROUND_TRUTHS[:2], infos[:2], base_url=base_url)

    with pytest.raises(RewardClientError, match="could not score this completion"):
        compute_score("iu_xray", OVERSIZE, REFERENCE_A, None, base_url=base_url)
    explicit = compute_score("iu_xray", OVERSIZE, REFERENCE_A, None, base_url=base_url, unscored_score=-1.0)
    assert explicit["score"] == -1.0 and explicit["unscored"] == 1.0
    # verl stacks every key over the batch: an unscored sample has the keys of a scored one (NaN).
    assert set(explicit) == set(results[0])
    assert math.isnan(explicit["clinical_errors"])


def reward_loop_function(raw_fn: Any, **reward_kwargs: Any) -> Any:
    """How verl 0.9.1 (verl/trainer/ppo/reward.py) wraps a custom async reward function: a partial
    of an async wrapper in which ``custom_reward_function.reward_kwargs`` win over call keywords."""

    async def with_reward_kwargs(fn: Any, extra: dict, *args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **{**kwargs, **extra})

    return functools.partial(with_reward_kwargs, raw_fn, reward_kwargs)


async def reward_loop_worker(reward_fn: Any, samples: list[tuple[str, str, dict]]) -> list[dict]:
    """verl 0.9.1's Reward Loop naive manager, per sample (reward_manager/naive.py ``run_single``): an
    async function (``inspect.iscoroutinefunction``) is awaited, one task per sample, with keyword
    arguments only and ``num_turns`` / ``rollout_reward_scores`` added to ``extra_info``."""
    assert inspect.iscoroutinefunction(reward_fn)

    async def run_single(solution: str, truth: str, info: dict) -> dict:
        extra_info = {**info, "num_turns": None, "rollout_reward_scores": {}}
        result = await reward_fn(
            data_source="iu_xray", solution_str=solution, ground_truth=truth, extra_info=extra_info
        )
        assert isinstance(result["score"], float)  # what verl reads as the reward
        return result

    return await asyncio.gather(*(run_single(*sample) for sample in samples))


async def test_async_compute_score_in_the_reward_loop_shape_sends_one_request(proxy: FlakyServer) -> None:
    expected = direct(proxy.upstream, SOLUTIONS * 4, GROUND_TRUTHS * 4)
    samples = [
        (s, t, {"index": i // 2})
        for i, (s, t) in enumerate(zip(SOLUTIONS * 4, GROUND_TRUTHS * 4, strict=True))
    ]
    reward_fn = reward_loop_function(compute_score_async, base_url=proxy.base_url, profile="default")
    results = await reward_loop_worker(reward_fn, samples)
    assert len(proxy.score_attempts()) == 1  # 16 samples, one task each, one request
    assert [result["score"] for result in results] == pytest.approx([item["reward"] for item in expected])
    assert {key for result in results for key in result} == {"score", "unscored", *expected[0]["components"]}
    again = await reward_loop_worker(reward_fn, samples[:2])
    assert [result["score"] for result in again] == pytest.approx([item["reward"] for item in expected[:2]])


async def test_async_compute_score_never_turns_a_missing_reward_into_zero(
    short_reports: InProcessService, relay
) -> None:
    url = relay(short_reports).base_url
    samples = [(OVERSIZE, REFERENCE_A, {}), (SOLUTIONS[0], REFERENCE_A, {})]
    with pytest.raises(RewardClientError, match="unscored_score"):
        await reward_loop_worker(reward_loop_function(compute_score_async, base_url=url), samples)
    stand_in = reward_loop_function(compute_score_async, base_url=url, unscored_score=-1.0)
    missing, scored = await reward_loop_worker(stand_in, samples)
    assert (missing["score"], missing["unscored"]) == (-1.0, 1.0)
    assert set(missing) == set(scored)  # the keys verl stacks over the batch, NaN where unscored
    assert all(math.isnan(missing[key]) for key in set(missing) - {"score", "unscored"})
    assert scored["unscored"] == 0.0 and scored["score"] > 0
