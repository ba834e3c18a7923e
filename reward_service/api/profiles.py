"""Profiles and the registered components."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from reward_service.api.deps import EngineDep
from reward_service.api.schemas import ComponentInfo, ErrorResponse, ProfileSummary
from reward_service.composite import ProfileError, load_profile, shipped_profiles
from reward_service.scorers import REGISTRY, scorer_class

router = APIRouter(tags=["profiles"])


@router.get("/v1/profiles", response_model=list[ProfileSummary])
async def list_profiles(engine: EngineDep) -> list[ProfileSummary]:
    """Shipped profiles and the ones this service loaded (which requests may select)."""
    summaries = {
        name: ProfileSummary(
            name=name,
            version=loaded.profile.version,
            description=loaded.profile.description,
            loaded=True,
            profile_hash=loaded.hash,
        )
        for name, loaded in engine.profiles.items()
    }
    for name in shipped_profiles():
        if name not in summaries:
            try:
                profile = load_profile(name)
            except ProfileError:
                continue
            summaries[name] = ProfileSummary(
                name=name, version=profile.version, description=profile.description, loaded=False
            )
    return sorted(summaries.values(), key=lambda summary: summary.name)


@router.get(
    "/v1/profiles/{name}", responses={404: {"model": ErrorResponse, "description": "No such profile."}}
)
async def show_profile(name: str, engine: EngineDep) -> dict[str, Any]:
    """A profile's full definition, with its hash when it is loaded."""
    loaded = engine.profiles.get(name)
    if loaded is not None:
        return {**loaded.profile.model_dump(mode="json"), "loaded": True, "profile_hash": loaded.hash}
    if name not in shipped_profiles():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no profile {name!r}; known profiles: {', '.join(sorted({*shipped_profiles(), *engine.profiles}))}",
        )
    return {**load_profile(name).model_dump(mode="json"), "loaded": False, "profile_hash": None}


@router.get("/v1/components", response_model=list[ComponentInfo])
async def list_components() -> list[ComponentInfo]:
    """Every registered scorer, its kind, what it reads and its options."""
    infos = []
    for name in sorted(REGISTRY):
        cls = scorer_class(name)
        infos.append(
            ComponentInfo(
                name=name,
                kind=str(cls.kind),
                description=cls.description,
                requires=list(cls.requires),
                options_schema=cls.Options.model_json_schema(),
            )
        )
    return infos
