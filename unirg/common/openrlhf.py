"""OpenRLHF's remote reward protocol, shared by the service's route and the clients' ``reward_func``.

OpenRLHF sends ``query`` = prompt + response as decoded text, chat-template tokens included,
``prompts`` = the prompts, and ``labels`` = the dataset's ``--label_key`` column (here the reference
report). The response is what follows the prompt in the query, with template tokens such as
``<|im_end|>``, ``<|endoftext|>`` or ``</s>`` removed.

It answers ``rewards`` (advantages), ``scores`` (dynamic filtering; the same reward here) and
``extra_logs`` (one value per sample per key, logged by OpenRLHF): each component's raw score and
``unscored`` (1 where the service could not score the sample). A sample without a reward gets the
mean reward of the scored samples of the same prompt, i.e. zero advantage, never a silent 0.

Both ways OpenRLHF takes rewards (``reward_service/api/openrlhf.py`` and ``clients/openrlhf.py``) build
their answer here, so they end in the same numbers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TypedDict

from unirg.common.fill import fill_unscored

logger = logging.getLogger(__name__)

# End-of-turn, padding and role tokens of common chat templates: Qwen/ChatML and Llama 3 (<|...|>),
# Llama 2 and Mistral (<s>, </s>, [INST]), Gemma (<start_of_turn>, <end_of_turn>, <eos>, <pad>).
CHAT_TEMPLATE_TOKENS = re.compile(
    r"<\|[A-Za-z0-9_.:-]{1,40}\|>|</?s>|\[/?INST\]|<start_of_turn>|<end_of_turn>|<eos>|<bos>|<pad>|\[PAD\]"
)


class OpenRLHFOutputs(TypedDict):
    """OpenRLHF's reward answer as plain lists, one value per sample."""

    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


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
) -> OpenRLHFOutputs:
    """OpenRLHF's reward answer: ``rewards``, ``scores`` and per-sample ``extra_logs``.

    Missing rewards are filled with their group's mean (see :mod:`unirg.common.fill`); missing
    component scores, which are only logged, with the batch mean of that component. Raises
    :class:`~unirg.common.fill.NothingScoredError` when no sample has a reward.
    """
    filled = fill_unscored(rewards, groups)
    extra_logs: dict[str, list[float]] = {
        key: fill_unscored(scores)
        for key, scores in component_scores.items()
        if any(s is not None for s in scores)
    }
    extra_logs["unscored"] = [1.0 if reward is None else 0.0 for reward in rewards]
    return {"rewards": filled, "scores": list(filled), "extra_logs": extra_logs}
