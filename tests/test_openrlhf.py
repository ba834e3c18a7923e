"""OpenRLHF: the service's ``/openrlhf/get_reward`` endpoint and the ``reward_func`` Python-file mode,
on the service's app in this process (``reward_func`` reaches it through a loopback relay)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import torch
from in_process import InProcessService
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from clients import RewardClientError
from clients.openrlhf import reward_func
from unirg.common.openrlhf import response_from_query

# The ChatML template of Qwen2-style chat models.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
REFERENCE_A = "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion."
REFERENCE_B = (
    "Findings: No focal consolidation. No pneumothorax. Impression: No acute cardiopulmonary process."
)
RESPONSES = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Heart size normal. Impression: Normal chest.",
    "Findings: Lungs are clear. No pneumothorax. Impression: No acute process.",
    "Findings: Cardiomegaly. Impression: Heart failure.",
]
LABELS = [REFERENCE_A, REFERENCE_A, REFERENCE_B, REFERENCE_B]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"])}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHATML,
    )


def openrlhf_batch(tokenizer: PreTrainedTokenizerFast) -> dict[str, list[str]]:
    """What OpenRLHF sends: chat-templated prompts, and prompt + response decoded with special tokens."""
    prompts = [
        tokenizer.apply_chat_template(
            [
                {"role": "system", "content": "You are a radiologist."},
                {"role": "user", "content": f"Indication: dyspnea. Write the report for study {study}."},
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
        for study in "AABB"
    ]
    queries = [
        prompt + response + "<|im_end|>\n<|endoftext|>"
        for prompt, response in zip(prompts, RESPONSES, strict=True)
    ]
    queries[3] = "<|endoftext|><|endoftext|>" + queries[3]  # left padding before the prompt
    return {"query": queries, "prompts": prompts, "labels": LABELS}


@pytest.fixture
def service(default_app: InProcessService) -> Iterator[httpx.Client]:
    with default_app.client() as client:
        yield client


def direct(service: httpx.Client, candidates: list[str], references: list[str]) -> list[dict]:
    items = [{"reference": r, "candidate": c} for c, r in zip(candidates, references, strict=True)]
    response = service.post("/v1/score", json={"items": items})
    response.raise_for_status()
    return response.json()["items"]


def test_response_is_cut_from_the_query(tokenizer: PreTrainedTokenizerFast) -> None:
    batch = openrlhf_batch(tokenizer)
    assert [
        response_from_query(q, p) for q, p in zip(batch["query"], batch["prompts"], strict=True)
    ] == RESPONSES
    # Decoding may not reproduce the prompt byte for byte; template tokens are still removed.
    assert response_from_query("<s>[INST] hi [/INST] Impression: Normal.</s>", "<s> [INST] hi [/INST]") == (
        "Impression: Normal."
    )


def test_endpoint_answers_in_openrlhfs_protocol(service: httpx.Client, tokenizer) -> None:
    response = service.post(
        "/openrlhf/get_reward",
        params={"profile": "default"},
        json=openrlhf_batch(tokenizer),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = direct(service, RESPONSES, LABELS)
    assert body["rewards"] == pytest.approx([item["reward"] for item in expected])
    assert body["scores"] == body["rewards"]
    for key in expected[0]["components"]:
        assert body["extra_logs"][key] == pytest.approx(
            [item["components"][key]["score"] for item in expected]
        )
    assert body["extra_logs"]["unscored"] == [0.0] * 4
    # What OpenRLHF does with the answer: tensors of one value per sample.
    assert torch.tensor(body["rewards"]).shape == (4,)
    assert all(torch.tensor(values).shape == (4,) for values in body["extra_logs"].values())


def test_endpoint_refuses_what_it_cannot_score(service: httpx.Client, tokenizer) -> None:
    batch = openrlhf_batch(tokenizer)
    url = "/openrlhf/get_reward"
    missing = service.post(url, json={"query": batch["query"], "prompts": batch["prompts"]})
    assert missing.status_code == 422 and "--label_key" in missing.json()["detail"]
    uneven = service.post(url, json={**batch, "labels": LABELS[:3]})
    assert uneven.status_code == 422 and "one prompt and one label per query" in uneven.json()["detail"]
    unknown = service.post(url, params={"profile": "no-such-profile"}, json=batch)
    assert unknown.status_code == 404


def test_unscored_samples_get_their_group_mean(start_app, relay, tokenizer, monkeypatch) -> None:
    app = start_app(env={"UNIRG_MAX_REPORT_CHARS": "300"})
    short_reports = app.client()
    batch = openrlhf_batch(tokenizer)
    batch["query"][1] = batch["prompts"][1] + "Findings: " + "Stable chest. " * 30 + "<|im_end|>"
    body = short_reports.post("/openrlhf/get_reward", json=batch).json()
    scored = direct(short_reports, [RESPONSES[0]], [REFERENCE_A])[0]
    assert body["extra_logs"]["unscored"] == [0.0, 1.0, 0.0, 0.0]
    assert body["rewards"][1] == pytest.approx(scored["reward"])  # zero advantage within its group

    batch["query"] = [prompt + "Findings: " + "Stable chest. " * 30 for prompt in batch["prompts"]]
    nothing = short_reports.post("/openrlhf/get_reward", json=batch)
    assert nothing.status_code == 503 and "none of the 4 items" in nothing.json()["detail"]
    # The Python-file mode shares the answer's code; in the clients a batch like this is a RewardClientError.
    monkeypatch.setenv("UNIRG_REWARD_URL", relay(app).base_url)
    with pytest.raises(RewardClientError, match="none of the 4 items"):
        reward_func(batch["query"], batch["prompts"], batch["labels"])


def test_reward_func_matches_the_endpoint(
    default_app: InProcessService, service: httpx.Client, relay, tokenizer, monkeypatch
) -> None:
    monkeypatch.setenv("UNIRG_REWARD_URL", relay(default_app).base_url)
    batch = openrlhf_batch(tokenizer)
    outputs = reward_func(batch["query"], batch["prompts"], batch["labels"])
    endpoint = service.post("/openrlhf/get_reward", json=batch).json()
    assert isinstance(outputs["rewards"], torch.Tensor) and outputs["rewards"].dtype == torch.float32
    assert outputs["rewards"].tolist() == pytest.approx(endpoint["rewards"])
    assert outputs["scores"].tolist() == pytest.approx(endpoint["scores"])
    assert set(outputs["extra_logs"]) == set(endpoint["extra_logs"])
    for key, values in endpoint["extra_logs"].items():
        assert outputs["extra_logs"][key].tolist() == pytest.approx(values)
    with pytest.raises(ValueError, match="--label_key"):
        reward_func(batch["query"], batch["prompts"], None)
