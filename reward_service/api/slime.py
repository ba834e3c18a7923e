"""``POST /slime/reward``: one sample in slime's remote reward protocol.

slime (``--rm-type remote_rm --rm-url URL``) posts ``{"prompt", "response", "label"}`` per sample and
keeps the JSON answer as the sample's reward; with ``--reward-key reward`` it trains on the
``reward`` field of the dict answered here, and the other fields (each component's raw score,
``unscored``) stay with the sample. The label is the reference report (slime's ``--label-key``).
Samples arriving together are merged into one scorer batch by the engine, so one sample per request
costs about what a batch does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from reward_service.api.deps import ScoringDep
from reward_service.api.schemas import ErrorResponse, ScoreRequest, ScoreRequestItem
from reward_service.api.score import score_request

router = APIRouter(tags=["slime"])


class SlimeRequest(BaseModel):
    # slime versions add fields over time; what is not needed here is ignored.
    model_config = ConfigDict(extra="ignore")

    prompt: Any = Field(
        default=None, description="The prompt (text or chat messages); not read, images stay with slime."
    )
    response: str = Field(description="The generated report.")
    label: str = Field(description="The reference report (slime --label-key).")


@router.post(
    "/slime/reward",
    responses={
        404: {"model": ErrorResponse, "description": "The profile is not loaded."},
        422: {
            "model": ErrorResponse,
            "description": "Malformed sample, or a sample that could not be scored.",
        },
        429: {"model": ErrorResponse, "description": "The service is full; retry after Retry-After seconds."},
    },
)
async def slime_reward(
    request: SlimeRequest,
    scoring: ScoringDep,
    profile: str | None = Query(
        None, description="Profile to score with; the service's default when absent."
    ),
    unscored_reward: float | None = Query(
        None,
        description="Reward answered for a sample the service cannot score (e.g. an over-long response); "
        "without it such a sample gets a 422 saying why, never a silent 0.",
    ),
) -> dict[str, float]:
    """Score one slime sample: ``reward`` (use ``--reward-key reward``), raw component scores, ``unscored``."""
    scored = await score_request(
        ScoreRequest(
            profile=profile,
            items=[ScoreRequestItem(reference=request.label, candidate=request.response)],
            return_details=False,
        ),
        scoring,
    )
    item = scored.items[0]
    reward = unscored_reward if item.reward is None else item.reward
    if reward is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"this sample could not be scored ({'; '.join(item.errors)}); add unscored_reward=<value> to "
            "--rm-url to give such samples a stand-in reward",
        )
    components = {key: component.score for key, component in item.components.items()}
    return {
        "reward": float(reward),
        **{key: score for key, score in components.items() if score is not None},
        "unscored": 1.0 if item.reward is None else 0.0,
    }
