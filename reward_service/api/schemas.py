"""Request and response models of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ScoreRequestItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, description="Caller's id, echoed back; defaults to the item's index."
    )
    reference: str = Field(description="Ground-truth report.")
    candidate: str = Field(description="Generated report to score.")
    prior_report: str | None = Field(
        default=None, description="Prior study's report, for longitudinal scoring."
    )
    context: dict[str, str] = Field(
        default_factory=dict, description="Free-text context such as `indication` and `comparison`."
    )


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(
        default=None, description="Profile name; the service's default profile when absent."
    )
    items: list[ScoreRequestItem] = Field(min_length=1, description="Report pairs to score.")
    return_details: bool = Field(default=True, description="Include each component's details.")


class ComponentScore(BaseModel):
    score: float | None
    weight: float
    contribution: float | None = Field(default=None, description="What this component added to the reward.")
    details: dict[str, Any] | None = None
    error: str | None = None


class ScoredItem(BaseModel):
    id: str
    reward: float | None = Field(description="Composite reward; null when a required component failed.")
    gate: float | None = Field(
        default=None,
        description="Product of the profile's gate components (1 without gates); the reward includes it.",
    )
    components: dict[str, ComponentScore]
    errors: list[str]


class Timings(BaseModel):
    total_ms: float
    components_ms: dict[str, float]


class ScoreResponse(BaseModel):
    profile: str
    profile_hash: str
    items: list[ScoredItem]
    timings: Timings


class ComponentInfo(BaseModel):
    name: str
    kind: str
    description: str
    requires: list[str]
    options_schema: dict[str, Any]


class ProfileSummary(BaseModel):
    name: str
    version: int
    description: str
    loaded: bool
    profile_hash: str | None = None


class ErrorResponse(BaseModel):
    detail: Any
