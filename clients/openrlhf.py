"""OpenRLHF reward functions backed by the reward service.

OpenRLHF takes rewards two ways, and both end in the same numbers:

* **Remote reward server**: ``--remote_rm_url http://HOST:PORT/openrlhf/get_reward?profile=NAME``
  points OpenRLHF at the service's own endpoint (``reward_service/api/openrlhf.py``).
* **Python file**: ``--remote_rm_url /path/to/clients/openrlhf.py`` makes OpenRLHF call
  :func:`reward_func` here, which scores through :class:`~clients.RewardClient` (retries, chunking, the
  failure-rate limit). The service is found via ``UNIRG_REWARD_URL`` / ``UNIRG_REWARD_PROFILE``.

OpenRLHF sends ``query`` = prompt + response as decoded text, chat-template tokens included,
``prompts`` = the prompts, and ``labels`` = the dataset's ``--label_key`` column (here the reference
report). The response is what follows the prompt in the query, with template tokens such as
``<|im_end|>``, ``<|endoftext|>`` or ``</s>`` removed.

It answers ``rewards`` (advantages), ``scores`` (dynamic filtering; the same reward here) and
``extra_logs`` (one value per sample per key, logged by OpenRLHF): each component's raw score and
``unscored`` (1 where the service could not score the sample). A sample without a reward gets the
mean reward of the scored samples of the same prompt, i.e. zero advantage, never a silent 0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from clients._adapters import shared_client
from clients._fill import fill_unscored
from clients._models import RewardItem
from clients._settings import AdapterSettings

logger = logging.getLogger("clients")

# End-of-turn, padding and role tokens of common chat templates: Qwen/ChatML and Llama 3 (<|...|>),
# Llama 2 and Mistral (<s>, </s>, [INST]), Gemma (<start_of_turn>, <end_of_turn>, <eos>, <pad>).
CHAT_TEMPLATE_TOKENS = re.compile(
    r"<\|[A-Za-z0-9_.:-]{1,40}\|>|</?s>|\[/?INST\]|<start_of_turn>|<end_of_turn>|<eos>|<bos>|<pad>|\[PAD\]"
)


def response_from_query(
    query: str, prompt: str | None, special_tokens: re.Pattern[str] = CHAT_TEMPLATE_TOKENS
) -> str:
    """The generated response inside an OpenRLHF ``query`` (prompt + response), as plain text.

    The prompt is cut at its last occurrence in the query (left padding may precede it); when it does
    not occur, the whole query is used and a warning logged. Template tokens are then removed.
    """
    response = query
    if prompt:
        position = query.rfind(prompt)
        if position >= 0:
            response = query[position + len(prompt) :]
        else:
            stripped_prompt = special_tokens.sub("", prompt).strip()
            stripped_query = special_tokens.sub("", query)
            position = stripped_query.rfind(stripped_prompt) if stripped_prompt else -1
            if position >= 0:
                response = stripped_query[position + len(stripped_prompt) :]
            else:
                logger.warning("prompt not found in an OpenRLHF query; scoring the whole query")
    return special_tokens.sub("", response).strip()


def openrlhf_outputs(
    rewards: Sequence[float | None],
    component_scores: Mapping[str, Sequence[float | None]],
    groups: Sequence[str],
) -> dict[str, Any]:
    """OpenRLHF's reward answer as plain lists: ``rewards``, ``scores`` and per-sample ``extra_logs``.

    Missing rewards are filled with their group's mean (see :mod:`clients._fill`); missing component
    scores, which are only logged, with the batch mean of that component.
    """
    filled = fill_unscored(rewards, groups)
    extra_logs: dict[str, list[float]] = {
        key: fill_unscored(scores)
        for key, scores in component_scores.items()
        if any(s is not None for s in scores)
    }
    extra_logs["unscored"] = [1.0 if reward is None else 0.0 for reward in rewards]
    return {"rewards": filled, "scores": list(filled), "extra_logs": extra_logs}


def reward_func(
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[str] | None = None,
    *,
    base_url: str | None = None,
    profile: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """OpenRLHF's Python-file reward function (``--remote_rm_url /path/to/this/file``).

    Returns ``{"rewards": tensor, "scores": tensor, "extra_logs": {key: tensor}}``, one value per query.
    ``labels`` must hold the reference reports: start OpenRLHF with ``--label_key <reference column>``.
    """
    import torch  # OpenRLHF runs on torch; the rest of the clients package must not need it.

    if labels is None or len(labels) != len(queries):
        raise ValueError(
            "reward_func needs one reference report per query in `labels`: "
            "start OpenRLHF with --label_key set to the reference column of your dataset"
        )
    settings = AdapterSettings()
    client = shared_client(base_url or settings.reward_url, settings.reward_timeout)
    items = [
        RewardItem(reference=str(label), candidate=response_from_query(query, prompt))
        for query, prompt, label in zip(queries, prompts, labels, strict=True)
    ]
    result = client.score_items(items, profile=profile or settings.reward_profile, return_details=False)
    outputs = openrlhf_outputs(
        result.rewards, {key: result.component_scores(key) for key in result.component_keys()}, list(prompts)
    )
    return {
        "rewards": torch.tensor(outputs["rewards"], dtype=torch.float32),
        "scores": torch.tensor(outputs["scores"], dtype=torch.float32),
        "extra_logs": {
            key: torch.tensor(values, dtype=torch.float32) for key, values in outputs["extra_logs"].items()
        },
    }
