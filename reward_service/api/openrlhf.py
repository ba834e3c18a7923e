"""``POST /openrlhf/get_reward``: the reward in OpenRLHF's remote reward-model protocol.

Point OpenRLHF at it with ``--remote_rm_url http://HOST:PORT/openrlhf/get_reward?profile=NAME`` and
``--label_key <reference column>``. The request carries ``query`` (prompt + response, chat-template
tokens included), ``prompts`` and ``labels`` (reference reports); the answer carries ``rewards``,
``scores`` and per-sample ``extra_logs``. Scoring is exactly that of ``POST /v1/score``; the protocol
(the response inside a query, the answer's shape) is :mod:`unirg.common.openrlhf`, which the clients'
``reward_func`` shares.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from reward_service.api.deps import ScoringDep
from reward_service.api.schemas import ErrorResponse, ScoreRequest, ScoreRequestItem
from reward_service.api.score import score_request
from unirg.common.fill import NothingScoredError
from unirg.common.openrlhf import openrlhf_outputs, response_from_query

router = APIRouter(tags=["openrlhf"])


class OpenRLHFRequest(BaseModel):
    # OpenRLHF versions add fields over time; what is not needed here is ignored.
    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(description="Prompt + response per sample, as OpenRLHF decoded it.")
    prompts: list[str] | None = Field(
        default=None, description="The prompt of each sample, used to cut it off."
    )
    labels: list[str] | None = Field(
        default=None, description="Reference report per sample (OpenRLHF --label_key)."
    )


class OpenRLHFResponse(BaseModel):
    rewards: list[float] = Field(description="Reward per sample; used for advantages.")
    scores: list[float] = Field(description="The same rewards, for OpenRLHF's dynamic filtering.")
    extra_logs: dict[str, list[float]] = Field(
        description="Per-sample values OpenRLHF logs: each component's raw score and `unscored` (1 = no reward)."
    )


@router.post(
    "/openrlhf/get_reward",
    response_model=OpenRLHFResponse,
    responses={
        404: {"model": ErrorResponse, "description": "The profile is not loaded."},
        422: {"model": ErrorResponse, "description": "Missing labels or lists of different lengths."},
        429: {"model": ErrorResponse, "description": "The service is full; retry after Retry-After seconds."},
        503: {
            "model": ErrorResponse,
            "description": "No sample could be scored, profiles are still loading, or the service is draining.",
        },
    },
)
async def get_reward(
    request: OpenRLHFRequest,
    scoring: ScoringDep,
    profile: str | None = Query(
        None, description="Profile to score with; the service's default when absent."
    ),
) -> OpenRLHFResponse:
    """Score an OpenRLHF batch: strip each prompt from its query, score the response against its label."""
    count = len(request.query)
    if count == 0:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "query is empty: send at least one sample")
    if request.labels is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "labels is missing: start OpenRLHF with --label_key set to the dataset column of reference reports",
        )
    prompts = request.prompts if request.prompts is not None else [""] * count
    if len(request.labels) != count or len(prompts) != count:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"query has {count} entries, prompts {len(prompts)} and labels {len(request.labels)}: "
            "send one prompt and one label per query",
        )
    items = [
        ScoreRequestItem(id=str(index), reference=label, candidate=response_from_query(query, prompt))
        for index, (query, prompt, label) in enumerate(
            zip(request.query, prompts, request.labels, strict=True)
        )
    ]
    scored = await score_request(ScoreRequest(profile=profile, items=items, return_details=False), scoring)
    rewards = [item.reward for item in scored.items]
    keys = dict.fromkeys(key for item in scored.items for key in item.components)
    components = {
        key: [item.components[key].score if key in item.components else None for item in scored.items]
        for key in keys
    }
    try:
        return OpenRLHFResponse(**openrlhf_outputs(rewards, components, prompts))
    except NothingScoredError as exc:
        errors = sorted({error for item in scored.items for error in item.errors})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}: {'; '.join(errors[:5])}") from exc
