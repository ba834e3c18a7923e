"""OpenRLHF reward functions backed by the reward service.

OpenRLHF takes rewards two ways, and both end in the same numbers:

* **Remote reward server**: ``--remote_rm_url http://HOST:PORT/openrlhf/get_reward?profile=NAME``
  points OpenRLHF at the service's own endpoint (``reward_service/api/openrlhf.py``).
* **Python file**: ``--remote_rm_url /path/to/clients/openrlhf.py`` makes OpenRLHF call
  :func:`reward_func` here, which scores through :class:`~clients.RewardClient` (retries, chunking, the
  failure-rate limit). The service is found via ``UNIRG_REWARD_URL`` / ``UNIRG_REWARD_PROFILE``.

The protocol itself (the response inside a query, the answer's shape, the stand-in for a missing
reward) is :mod:`unirg.common.openrlhf`, shared with the service's endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clients._adapters import shared_client
from clients._errors import RewardClientError
from clients._models import RewardItem
from clients._settings import AdapterSettings
from unirg.common.fill import NothingScoredError
from unirg.common.openrlhf import openrlhf_outputs, response_from_query


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
    scores = {key: result.component_scores(key) for key in result.component_keys()}
    try:
        outputs = openrlhf_outputs(result.rewards, scores, list(prompts))
    except NothingScoredError as exc:  # every error of the clients is a RewardClientError
        raise RewardClientError(str(exc)) from exc
    return {
        "rewards": torch.tensor(outputs["rewards"], dtype=torch.float32),
        "scores": torch.tensor(outputs["scores"], dtype=torch.float32),
        "extra_logs": {
            key: torch.tensor(values, dtype=torch.float32) for key, values in outputs["extra_logs"].items()
        },
    }
