"""The TRL reward functions, called by TRL 1.16's own ``GRPOTrainer._calculate_rewards``."""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml
from accelerate import Accelerator
from flaky_server import FlakyServer
from in_process import InProcessService
from PIL import Image
from spawned_rewards import rewards_in_spawned_process
from transformers import TrainerState
from trl import GRPOTrainer
from trl.trainer.utils import get_callable_name, shutdown_event_loop_in_daemon, start_event_loop_in_daemon
from waiting import wait_until

from clients import ClientConfig, FailurePolicy, RetryConfig
from clients.trl import make_reward_functions

REFERENCES = [
    "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion.",
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process.",
]
# Two prompts x two generations, as GRPO lays them out.
COMPLETIONS = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Heart size normal. Impression: Normal chest.",
    "Findings: Lungs are clear. No pneumothorax. Impression: No acute process.",
    "Findings: Cardiomegaly. Impression: Heart failure.",
]
GROUP_REFERENCES = [REFERENCES[0], REFERENCES[0], REFERENCES[1], REFERENCES[1]]


class TrainerShell:
    """The attributes ``GRPOTrainer._calculate_rewards`` reads, around TRL's own methods."""

    _calculate_rewards = GRPOTrainer._calculate_rewards
    _log_completion_extra = GRPOTrainer._log_completion_extra
    _log_metric = GRPOTrainer._log_metric

    def __init__(self, reward_funcs: Sequence[Any]) -> None:
        self.accelerator = Accelerator(cpu=True)
        self.args = type("Args", (), {"report_to": []})()
        self.state = TrainerState()
        self.reward_funcs = list(reward_funcs)
        self.reward_func_names = [get_callable_name(func) for func in reward_funcs]
        self.reward_processing_classes = [None] * len(reward_funcs)
        self.environments = None
        self._pending_extra_logs: dict[str, list] = defaultdict(list)
        self._pending_metrics: dict[str, list] = defaultdict(list)
        self.async_loop_thread, self.async_loop, ready = start_event_loop_in_daemon(name="test-async-loop")
        wait_until(ready.is_set, 30, "TRL's reward event loop thread started")

    def rewards(self, prompts: list, completions: list, columns: dict[str, list]) -> torch.Tensor:
        inputs = [
            {
                "prompt": prompt,
                "completion": completion,
                **{key: values[i] for key, values in columns.items()},
            }
            for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True))
        ]
        completion_ids = [[1, 2, 3] for _ in completions]
        return self._calculate_rewards(inputs, prompts, completions, completion_ids)

    def close(self) -> None:
        shutdown_event_loop_in_daemon(self.async_loop_thread, self.async_loop)


@pytest.fixture
def proxy(default_app: InProcessService, relay) -> FlakyServer:
    """Counts and records what reaches the service (the app in this process), on a loopback port."""
    return relay(default_app)


def direct(
    service: httpx.Client, candidates: list[str], references: list[str], profile: str | None = None
) -> dict:
    items = [{"reference": r, "candidate": c} for c, r in zip(candidates, references, strict=True)]
    body: dict[str, Any] = {"items": items}
    if profile:
        body["profile"] = profile
    response = service.post("/v1/score", json=body)
    response.raise_for_status()
    return response.json()


def run(funcs: Sequence[Any], prompts: list, completions: list, columns: dict[str, list]) -> tuple:
    shell = TrainerShell(funcs)
    try:
        return shell.rewards(prompts, completions, columns), shell
    finally:
        shell.close()


def text_prompts() -> list[str]:
    return ["Write the report for study A."] * 2 + ["Write the report for study B."] * 2


def test_component_functions_share_one_request_and_sum_to_the_reward(proxy: FlakyServer) -> None:
    funcs = make_reward_functions(proxy.base_url)
    expected = direct(proxy.upstream, COMPLETIONS, GROUP_REFERENCES)
    components = expected["items"][0]["components"]
    keys = [key for key, component in components.items() if component["weight"]]
    # One function per weighted component; the default profile's report_guard is a gate, not a term.
    assert [func.__name__ for func in funcs] == keys
    assert funcs.reward_weights == [1.0] * len(keys)

    rewards, shell = run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})

    assert len(proxy.score_attempts()) == 1  # one HTTP call for the whole generation batch
    for column, key in enumerate(keys):
        contributions = [item["components"][key]["contribution"] for item in expected["items"]]
        assert rewards[:, column].tolist() == pytest.approx(contributions)
    # With TRL's default reward_weights the functions add up to the service's composite reward (the
    # contributions include the gate).
    assert rewards.sum(dim=1).tolist() == pytest.approx([item["reward"] for item in expected["items"]])
    for key in components:
        raw = [item["components"][key]["score"] for item in expected["items"]]
        assert shell._pending_metrics[f"unirg/{key}/score_mean"] == pytest.approx([sum(raw) / len(raw)])
    assert shell._pending_metrics["unirg/unscored_frac"] == [0.0]
    assert funcs.profile_hash == expected["profile_hash"]


def test_conversational_completions_and_images_in_prompts(proxy: FlakyServer) -> None:
    image = Image.new("RGB", (16, 16), color=(120, 30, 200))
    prompts = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": "Report."}],
            }
        ]
        for _ in COMPLETIONS
    ]
    completions = [[{"role": "assistant", "content": text}] for text in COMPLETIONS]
    columns = {
        "reference": GROUP_REFERENCES,
        "image": [image] * 4,
        "indication": ["Shortness of breath."] * 4,
        "study_id": ["a", "a", "b", "b"],
    }
    funcs = make_reward_functions(proxy.base_url, include_composite=True, id_column="study_id")
    assert [func.__name__ for func in funcs] == ["composite"]

    rewards, _ = run(funcs, prompts, completions, columns)

    expected = direct(proxy.upstream, COMPLETIONS, GROUP_REFERENCES)
    assert rewards[:, 0].tolist() == pytest.approx([item["reward"] for item in expected["items"]])
    (attempt,) = proxy.score_attempts()
    sent = json.loads(attempt.body)
    assert [item["candidate"] for item in sent["items"]] == COMPLETIONS
    assert sent["items"][0]["context"] == {"indication": "Shortness of breath."}
    assert [item["id"] for item in sent["items"]] == ["a#0", "a#1", "b#2", "b#3"]
    # Only text and ids leave the trainer: no image, no prompt.
    assert all(
        set(item) <= {"id", "reference", "candidate", "context", "prior_report"} for item in sent["items"]
    )
    assert b"Report." not in attempt.body


def test_each_generation_batch_is_scored_once(proxy: FlakyServer) -> None:
    funcs = make_reward_functions(proxy.base_url)
    shell = TrainerShell(funcs)
    try:
        first = shell.rewards(text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})
        # The same texts again in a later step are a new batch: scored again, same values.
        second = shell.rewards(text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})
    finally:
        shell.close()
    assert len(proxy.score_attempts()) == 2
    assert torch.equal(first, second)


def test_unscored_completions_get_none_not_zero(proxy: FlakyServer) -> None:
    config = ClientConfig(
        retry=RetryConfig(max_attempts=2, initial_backoff=0.001, max_backoff=0.01),
        failure_policy=FailurePolicy(max_failure_rate=None),
    )
    funcs = make_reward_functions(proxy.base_url, config=config)
    proxy.default_action = "500"  # from the first generation batch on
    rewards, shell = run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})
    # TRL turns None into NaN and treats an all-NaN row as unscorable (zero advantage).
    assert torch.isnan(rewards).all()
    assert shell._pending_metrics["unirg/unscored_frac"] == [1.0]
    assert all("HTTP 500" in error for error in shell._pending_extra_logs["unirg_errors"])


def test_a_broken_service_stops_training(proxy: FlakyServer) -> None:
    config = ClientConfig(
        retry=RetryConfig(max_attempts=1), failure_policy=FailurePolicy(max_failure_rate=0.5, min_items=4)
    )
    funcs = make_reward_functions(proxy.base_url, config=config)
    proxy.default_action = "503"
    with pytest.raises(Exception, match="got no reward") as error:
        run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})
    assert type(error.value).__name__ == "FailureRateExceededError"


def test_missing_reference_column_says_what_to_set(proxy: FlakyServer) -> None:
    funcs = make_reward_functions(proxy.base_url, reference_column="report")
    with pytest.raises(ValueError, match=r"pass reference_column=\.\.\. \(columns seen: reference\)"):
        run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})


def test_weights_and_transforms_of_a_custom_profile(tmp_path: Path, start_app, relay) -> None:
    profile = tmp_path / "weighted.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "weighted",
                "components": [
                    {"name": "rouge_l", "weight": 0.7},
                    {"name": "bleu2", "weight": 0.3, "transform": "one_minus"},
                    {"name": "report_guard", "weight": 0.0},
                ],
            }
        )
    )
    served = relay(start_app(profile=str(profile)))
    base_url, service = served.base_url, served.upstream
    funcs = make_reward_functions(base_url, "weighted")
    assert [func.__name__ for func in funcs] == ["rouge_l", "bleu2"]
    rewards, shell = run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})
    expected = direct(service, COMPLETIONS, GROUP_REFERENCES, "weighted")["items"]
    # Hand-derived: reward = 0.7 * rouge_l + 0.3 * (1 - bleu2).
    by_hand = [
        0.7 * item["components"]["rouge_l"]["score"] + 0.3 * (1 - item["components"]["bleu2"]["score"])
        for item in expected
    ]
    assert rewards.sum(dim=1).tolist() == pytest.approx(by_hand)
    assert [item["reward"] for item in expected] == pytest.approx(by_hand)
    assert "unirg/report_guard/score_mean" in shell._pending_metrics  # logged, not rewarded

    with pytest.raises(ValueError, match="weight 0"):
        make_reward_functions(base_url, "weighted", components=["report_guard"])
    with pytest.raises(ValueError, match="no component 'bertscore'"):
        make_reward_functions(base_url, "weighted", components=["bertscore"])
    with pytest.raises(ValueError, match="count it twice"):
        make_reward_functions(base_url, "weighted", components=["rouge_l"], include_composite=True)


def test_reward_functions_pickle_and_score_in_a_spawned_process(proxy: FlakyServer) -> None:
    funcs = make_reward_functions(proxy.base_url)
    here, _ = run(funcs, text_prompts(), COMPLETIONS, {"reference": GROUP_REFERENCES})  # opens a client
    copy = pickle.loads(pickle.dumps(funcs))
    assert [get_callable_name(func) for func in copy] == [get_callable_name(func) for func in funcs]
    assert copy.profile_hash == funcs.profile_hash and copy.reward_weights == funcs.reward_weights
    assert copy[0]._shared is copy[-1]._shared  # the set still shares one request per batch
    before = len(proxy.score_attempts())
    there = rewards_in_spawned_process(funcs, COMPLETIONS, {"reference": GROUP_REFERENCES})
    assert len(proxy.score_attempts()) == before + 1
    assert list(there) == [get_callable_name(func) for func in funcs]
    for column, values in enumerate(there.values()):  # TRL's tensor: one column per function
        assert values == pytest.approx(here[:, column].tolist(), abs=1e-6)
