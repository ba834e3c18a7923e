"""``clients.verl.compute_score_async`` inside verl's own Reward Loop, against a real reward service.

verl (0.9.1) needs transformers 5.5.3 or later, which the service's reference packages cannot run on,
so these tests run in their own environment holding verl and the ``clients`` package only
(``make test-verl`` builds ``.venv-verl``), while the service runs from the service's environment:
the interpreter named by ``UNIRG_SERVICE_PYTHON`` (``make test-verl`` sets it to ``.venv``'s).

What runs is verl's code from the config down: Hydra composes verl's ``ppo_trainer`` config with the
overrides docs/integrations.md gives, verl's ``RewardLoopManager`` starts its ``RewardLoopWorker``
actors on a local Ray instance (CPU), each worker loads the tokenizer and the custom reward function
from the config, and ``compute_rm_score`` splits a ``DataProto`` of rollouts over them; each worker's
``naive`` reward manager decodes the response tokens and awaits ``compute_score_async`` per sample.
The rewards verl puts in ``rm_scores`` must be the service's own rewards for the same reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

verl = pytest.importorskip("verl", reason="verl runs in its own environment: make test-verl")

import ray  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from live_service import REPO_ROOT, ServiceProcess, launch_service  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop import RewardLoopManager  # noqa: E402

from unirg_testing.qwen2 import build_word_tokenizer  # noqa: E402

SERVICE_PYTHON = "UNIRG_SERVICE_PYTHON"
ADAPTER = REPO_ROOT / "clients" / "verl.py"
NUM_WORKERS = 2
MAX_REPORT_CHARS = 300

PROMPT = "Write the findings and impression for this chest radiograph."
REFERENCE_A = "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion."
REFERENCE_B = (
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process."
)
# (rollout, ground truth): five rollouts, so verl pads the batch to a multiple of the two workers.
ROLLOUTS = [
    (
        "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
        REFERENCE_A,
    ),
    ("Findings: Heart size normal. Impression: Normal chest.", REFERENCE_A),
    (REFERENCE_A, REFERENCE_A),
    ("Findings: Lungs are clear. No pneumothorax. Impression: No acute process.", REFERENCE_B),
    ("Findings: Cardiomegaly. Impression: Heart failure.", REFERENCE_B),
]
# Over the service's character limit below: the service returns no reward for it.
OVERSIZE = "Findings: " + "Stable appearance of the chest. " * 12


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    python = os.environ.get(SERVICE_PYTHON)
    if not python:
        pytest.fail(
            f"set {SERVICE_PYTHON} to a Python whose environment runs the reward service (e.g. .venv/bin/python); "
            "`make test-verl` does"
        )
    service = launch_service(
        tmp_path_factory.mktemp("verl-service"),
        env={"PYTHONPATH": str(REPO_ROOT), "UNIRG_MAX_REPORT_CHARS": str(MAX_REPORT_CHARS)},
        python=python,
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer of the test's texts, saved as a model directory verl loads by path."""
    path = tmp_path_factory.mktemp("tiny-tokenizer")
    build_word_tokenizer([PROMPT, OVERSIZE, *(text for pair in ROLLOUTS for text in pair)]).save_pretrained(
        path
    )
    return path


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=NUM_WORKERS, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def verl_config(tokenizer_dir: Path, overrides: list[str]) -> Any:
    """verl's PPO trainer config as ``python -m verl.trainer.main_ppo <overrides>`` composes it."""
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose("ppo_trainer", overrides=[f"actor_rollout_ref.model.path={tokenizer_dir}", *overrides])


def reward_loop_overrides(base_url: str, **reward_kwargs: object) -> list[str]:
    """The Reward Loop settings of docs/integrations.md (the worker count fitted to this machine)."""
    kwargs = {"base_url": base_url, "profile": "default", **reward_kwargs}
    return [
        "reward.reward_manager.name=naive",
        f"reward.num_workers={NUM_WORKERS}",
        f"reward.custom_reward_function.path={ADAPTER}",
        "reward.custom_reward_function.name=compute_score_async",
        *(f"+reward.custom_reward_function.reward_kwargs.{key}={value}" for key, value in kwargs.items()),
    ]


@pytest.fixture
def reward_loop(local_ray: None, tokenizer_dir: Path) -> Iterator[Callable[[list[str]], RewardLoopManager]]:
    """Factory: verl's RewardLoopManager for some config overrides; its Ray workers go at teardown."""
    managers: list[RewardLoopManager] = []

    def start(overrides: list[str]) -> RewardLoopManager:
        manager = RewardLoopManager(verl_config(tokenizer_dir, overrides))
        managers.append(manager)
        return manager

    yield start
    for manager in managers:
        for worker in manager.reward_loop_workers:
            ray.kill(worker)


def rollout_batch(tokenizer_dir: Path, rollouts: list[tuple[str, str]]) -> DataProto:
    """Rollouts as verl's trainer hands them to the reward loop: left-padded prompts, right-padded
    responses ending in EOS, one attention mask over both, and the dataset's non-tensor fields."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    responses = [
        tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for text, _ in rollouts
    ]
    width = max(map(len, responses)) + 3  # every response padded on the right
    pad = tokenizer.pad_token_id
    prompt_ids = torch.tensor([[pad, pad, *prompt]] * len(rollouts))  # padded on the left
    prompt_mask = (prompt_ids != pad).long()
    response_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in responses])
    response_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in responses])
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_ids,
            "responses": response_ids,
            "input_ids": torch.cat([prompt_ids, response_ids], dim=1),
            "attention_mask": torch.cat([prompt_mask, response_mask], dim=1),
        },
        non_tensors={
            "data_source": np.array(["iu_xray"] * len(rollouts), dtype=object),
            "reward_model": np.array([{"ground_truth": truth} for _, truth in rollouts], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(rollouts))], dtype=object),
        },
    )


def service_items(base_url: str, rollouts: list[tuple[str, str]]) -> list[dict]:
    """The service's own results for the rollouts' reports, asked for directly."""
    items = [{"reference": truth, "candidate": text} for text, truth in rollouts]
    response = httpx.post(f"{base_url}/v1/score", json={"profile": "default", "items": items}, timeout=120)
    response.raise_for_status()
    return response.json()["items"]


def last_token_rewards(output: DataProto, batch: DataProto) -> tuple[list[float], torch.Tensor]:
    """verl's token-level rewards: the value on each response's last valid token, and the rest."""
    scores = output.batch["rm_scores"]
    assert scores.shape == batch.batch["responses"].shape
    prompt_length = batch.batch["prompts"].shape[1]
    last = batch.batch["attention_mask"][:, prompt_length:].sum(dim=1) - 1
    rows = torch.arange(len(batch))
    rest = scores.clone()
    rest[rows, last] = 0.0
    return scores[rows, last].tolist(), rest


def test_reward_loop_trains_on_the_services_rewards(
    service: ServiceProcess, tokenizer_dir: Path, reward_loop: Callable[[list[str]], RewardLoopManager]
) -> None:
    manager = reward_loop(reward_loop_overrides(service.base_url))
    batch = rollout_batch(tokenizer_dir, ROLLOUTS)
    output = manager.compute_rm_score(batch)

    expected = service_items(service.base_url, ROLLOUTS)
    rewards, rest = last_token_rewards(output, batch)
    assert rewards == pytest.approx([item["reward"] for item in expected], abs=1e-6)
    assert not rest.any()  # one reward per response, on its last token
    assert len(set(rewards)) > 2  # the rollouts are told apart, not one constant

    components = set(expected[0]["components"])
    assert set(output.meta_info["reward_extra_keys"]) == {"score", "unscored", *components}
    assert output.non_tensor_batch["score"].tolist() == pytest.approx(rewards)
    for key in components:
        assert output.non_tensor_batch[key].tolist() == pytest.approx(
            [item["components"][key]["score"] for item in expected]
        )
    assert output.non_tensor_batch["unscored"].tolist() == [0.0] * len(ROLLOUTS)


def test_a_sample_the_service_cannot_score_stops_the_reward_loop(
    service: ServiceProcess, tokenizer_dir: Path, reward_loop: Callable[[list[str]], RewardLoopManager]
) -> None:
    manager = reward_loop(reward_loop_overrides(service.base_url))
    rollouts = [ROLLOUTS[0], (OVERSIZE, REFERENCE_A)]
    with pytest.raises(ray.exceptions.RayTaskError, match="could not score this completion"):
        manager.compute_rm_score(rollout_batch(tokenizer_dir, rollouts))


def test_an_explicit_stand_in_reward_reaches_verl_flagged_unscored(
    service: ServiceProcess, tokenizer_dir: Path, reward_loop: Callable[[list[str]], RewardLoopManager]
) -> None:
    manager = reward_loop(reward_loop_overrides(service.base_url, unscored_score=-1.0))
    rollouts = [ROLLOUTS[0], (OVERSIZE, REFERENCE_A)]
    batch = rollout_batch(tokenizer_dir, rollouts)
    output = manager.compute_rm_score(batch)

    (scored,) = service_items(service.base_url, rollouts[:1])
    rewards, _ = last_token_rewards(output, batch)
    assert rewards == pytest.approx([scored["reward"], -1.0], abs=1e-6)
    assert output.non_tensor_batch["unscored"].tolist() == [0.0, 1.0]
    # verl stacks the first sample's keys over the batch: the unscored sample has them all, as NaN.
    assert set(output.meta_info["reward_extra_keys"]) == {"score", "unscored", *scored["components"]}
    for key, component in scored["components"].items():
        assert output.non_tensor_batch[key][0] == pytest.approx(component["score"])
        assert np.isnan(output.non_tensor_batch[key][1])
