"""Deterministic clinical-error scorer (``clinical_errors``): CheXprompt-style errors without an LLM.

Findings with presence, side, zone, severity, size, device position, certainty and change are
extracted from both reports by rules and compared (see :mod:`reward_service.text.clinical_errors`
for the categories and costs; the vocabulary and costs are data in ``reward_service/rules/``). The
score is ``1 / (1 + significant cost + minor_error_share * insignificant cost)``; every error is
listed in the details with its category, cost and character spans in both texts. The item's
``prior_report``, when given, checks the candidate's change claims ("new" when the prior had it).
Runs at thousands of pairs per second on one CPU core, and references are analysed once per
distinct text (cached), so a GRPO group sharing one reference pays for it once.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.clinical_errors import CATEGORIES, compare_reports
from reward_service.text.findings import FINDINGS


class ClinicalErrorsOptions(ScorerOptions):
    min_weight: float = Field(
        default=0.5,
        ge=0,
        description="Errors costing at least this are clinically significant; lighter ones (a missed "
        "granuloma, 0.25; a less specific location) are minor.",
    )
    minor_error_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Share of their cost that minor (insignificant) errors take off the score: "
        "0 ignores them, 1 counts them like significant ones.",
    )
    use_prior_report: bool = Field(
        default=True,
        description="Check the candidate's change claims against the item's prior_report, when given.",
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


class ClinicalErrorsScorer(RuleScorer[ClinicalErrorsOptions]):
    description = (
        "Rule-based clinical errors (CheXprompt categories: false/missed finding, wrong location, "
        "severity, size or certainty, false/omitted comparison) graded by clinical significance; "
        "1/(1 + weighted errors)."
    )
    reads_report_rules = True

    def score_one(self, item: ScoreItem) -> ScoreResult:
        options = self.options
        errors = compare_reports(
            item.reference,
            item.candidate,
            prior=item.prior_report if options.use_prior_report else None,
            weights=options.weights or None,
            min_weight=options.min_weight,
        )
        weighted = minor_weighted = 0.0
        significant_counts = dict.fromkeys(CATEGORIES.values(), 0)
        insignificant_counts = dict.fromkeys(CATEGORIES.values(), 0)
        for error in errors:
            if error.significant:
                weighted += error.weight
                significant_counts[CATEGORIES[error.category]] += 1
            else:
                minor_weighted += error.weight
                insignificant_counts[CATEGORIES[error.category]] += 1
        significant = sum(significant_counts.values())
        return ScoreResult(
            1.0 / (1.0 + weighted + options.minor_error_share * minor_weighted),
            {
                "weighted_significant_errors": weighted,
                "weighted_insignificant_errors": minor_weighted,
                "significant_errors": significant,
                "insignificant_errors": len(errors) - significant,
                "counts": significant_counts,
                "insignificant_counts": insignificant_counts,
                "prior_report_used": bool(item.prior_report) and options.use_prior_report,
                "errors": [error.as_dict() for error in errors],
            },
        )
