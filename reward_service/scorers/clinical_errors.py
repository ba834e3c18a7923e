"""Deterministic clinical-error scorer (``clinical_errors``): CheXprompt-style errors without an LLM.

Findings with presence, laterality, severity and change are extracted from both reports by rules and
compared (see :mod:`reward_service.text.clinical_errors` for the categories and weights); the score
is ``1 / (1 + weighted clinically significant errors)``, every error is listed in the details. Runs
at thousands of pairs per second on one CPU core, and references are extracted once per distinct
text (cached), so a GRPO group sharing one reference pays for it once.
"""

from __future__ import annotations

from collections import Counter

from pydantic import Field, field_validator

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.clinical_errors import CATEGORIES, compare_reports
from reward_service.text.findings import FINDINGS


class ClinicalErrorsOptions(ScorerOptions):
    min_weight: float = Field(
        0.5,
        ge=0,
        description="Errors weighing at least this are clinically significant and lower the score; "
        "lighter ones (e.g. a missed granuloma, 0.25) are listed only.",
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description=f"Override the clinical significance of findings by key: {', '.join(FINDINGS)}.",
    )

    @field_validator("weights")
    @classmethod
    def _known_findings(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(FINDINGS))
        if unknown:
            raise ValueError(f"unknown findings {', '.join(unknown)}; known: {', '.join(FINDINGS)}")
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("finding weights must be >= 0")
        return weights


class ClinicalErrorsScorer(RuleScorer):
    description = (
        "Rule-based clinical errors (CheXprompt categories: false/missed finding, wrong side, wrong "
        "severity, false/omitted comparison) weighted by clinical significance; 1/(1 + weighted errors)."
    )
    Options = ClinicalErrorsOptions

    def score_one(self, item: ScoreItem) -> ScoreResult:
        options: ClinicalErrorsOptions = self.options  # type: ignore[assignment]
        errors = compare_reports(
            item.reference, item.candidate, weights=options.weights or None, min_weight=options.min_weight
        )
        significant = [error for error in errors if error.significant]
        weighted = sum(error.weight for error in significant)
        significant_counts = Counter(CATEGORIES[error.category] for error in significant)
        insignificant_counts = Counter(
            CATEGORIES[error.category] for error in errors if not error.significant
        )
        return ScoreResult(
            1.0 / (1.0 + weighted),
            {
                "weighted_significant_errors": weighted,
                "significant_errors": len(significant),
                "insignificant_errors": len(errors) - len(significant),
                "counts": {kind: significant_counts[kind] for kind in CATEGORIES.values()},
                "insignificant_counts": {kind: insignificant_counts[kind] for kind in CATEGORIES.values()},
                "errors": [error.as_dict() for error in errors],
            },
        )
