"""``POST /v1/score``: the composite reward of a batch of report pairs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from reward_service import metrics
from reward_service.api.deps import Scoring, ScoringDep
from reward_service.api.schemas import (
    ComponentScore,
    ErrorResponse,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
    Timings,
)
from reward_service.engine import BatchReward, RewardEngine, without_surrogates
from reward_service.errors import NotReady, Overloaded
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings

router = APIRouter(tags=["scoring"])


class ServiceFull(Overloaded):
    """The service already holds as many score requests as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the service is scoring {limit} requests already (UNIRG_MAX_CONCURRENT_REQUESTS); "
            "retry after the Retry-After delay"
        )


def check_request(request: ScoreRequest, engine: RewardEngine, settings: Settings) -> None:
    """Refuse what cannot be scored as a whole, with a message that says what to fix."""
    count = len(request.items)
    if count > settings.max_items_per_request:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{count} items exceed the limit of {settings.max_items_per_request} per request "
            "(UNIRG_MAX_ITEMS_PER_REQUEST): split the batch",
        )
    try:
        engine.resolve(request.profile)
    except KeyError:
        if not engine.profiles:
            raise NotReady(
                "the service is still loading its profiles (see /readyz); retry after the Retry-After delay"
            ) from None
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"profile {request.profile!r} is not loaded; loaded profiles: {', '.join(sorted(engine.profiles))} "
            "(start the service with --profile or UNIRG_EXTRA_PROFILES to load others)",
        ) from None
    limit = settings.max_report_chars
    for index, item in enumerate(request.items):
        for field_name in ("reference", "prior_report"):
            text = getattr(item, field_name)
            if text is not None and len(text) > limit:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"items[{index}].{field_name} has {len(text)} characters, over the limit of {limit} "
                    "(UNIRG_MAX_REPORT_CHARS): shorten it or raise the limit",
                )
        _check_context(index, item.context, settings)


def _check_context(index: int, context: dict[str, str], settings: Settings) -> None:
    if len(context) > settings.max_context_keys:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"items[{index}].context has {len(context)} keys, over the limit of {settings.max_context_keys} "
            "(UNIRG_MAX_CONTEXT_KEYS): send only the fields the profile reads (e.g. indication, comparison)",
        )
    limit = settings.max_context_value_chars
    for key, value in context.items():
        if len(value) > limit or len(key) > limit:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"items[{index}].context.{without_surrogates(key)[:40]} has {max(len(value), len(key))} "
                f"characters, over the limit of {limit} (UNIRG_MAX_CONTEXT_VALUE_CHARS): shorten it",
            )


def build_response(batch: BatchReward, return_details: bool) -> list[ScoredItem]:
    weights = {c.component_key: c.weight for c in batch.profile.profile.components}
    scored = []
    for item_reward in batch.items:
        components = {
            key: ComponentScore(
                score=result.score,
                weight=weights[key],
                contribution=item_reward.composite.contributions.get(key),
                details=result.details if return_details else None,
                error=result.error,
            )
            for key, result in item_reward.components.items()
        }
        scored.append(
            ScoredItem(
                id=item_reward.item.id,
                reward=item_reward.composite.reward,
                gate=item_reward.composite.gate,
                components=components,
                errors=item_reward.composite.errors,
            )
        )
    return scored


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses={
        401: {"model": ErrorResponse, "description": "API keys are on and the request has no valid key."},
        404: {"model": ErrorResponse, "description": "The profile is not loaded."},
        413: {"model": ErrorResponse, "description": "Too many items, or a body over UNIRG_MAX_BODY_BYTES."},
        422: {"model": ErrorResponse, "description": "Malformed request or a field over its length limit."},
        429: {"model": ErrorResponse, "description": "The service is full; retry after Retry-After seconds."},
        503: {"model": ErrorResponse, "description": "Profiles still loading, or the service is draining."},
    },
)
async def score(request: ScoreRequest, scoring: ScoringDep) -> Response:
    """Score report pairs with a profile's composite reward.

    A candidate longer than ``UNIRG_MAX_REPORT_CHARS`` is not scored: that item alone gets a null reward
    and an error, since it comes from the policy under training and must not fail its neighbours.
    """
    scored = await score_request(request, scoring)
    # Serialised by pydantic-core directly: returning the model would make FastAPI validate it again.
    return Response(scored.model_dump_json(), media_type="application/json")


async def score_request(request: ScoreRequest, scoring: Scoring) -> ScoreResponse:
    """What ``POST /v1/score`` computes, for every route that scores (OpenRLHF's too)."""
    engine, settings, gate, load = scoring.engine, scoring.settings, scoring.gate, scoring.load
    check_request(request, engine, settings)
    if gate.locked():
        raise ServiceFull(settings.max_concurrent_requests)
    async with gate:
        metrics.IN_FLIGHT.inc()
        load.started(len(request.items))
        try:
            return await _score(request, engine)
        finally:
            load.finished(len(request.items))
            metrics.IN_FLIGHT.dec()


async def _score(request: ScoreRequest, engine: RewardEngine) -> ScoreResponse:
    items = [
        # The id is echoed back, so it must be encodable; the engine refuses the item's other bad text.
        ScoreItem(
            without_surrogates(raw.id) if raw.id is not None else str(index),
            raw.reference,
            raw.candidate,
            raw.prior_report,
            raw.context,
        )
        for index, raw in enumerate(request.items)
    ]
    batch = await engine.score(items, request.profile)
    return ScoreResponse(
        profile=batch.profile.profile.name,
        profile_hash=batch.profile.hash,
        items=build_response(batch, request.return_details),
        timings=Timings(
            total_ms=batch.total_seconds * 1000,
            components_ms={key: seconds * 1000 for key, seconds in batch.component_seconds.items()},
        ),
    )
