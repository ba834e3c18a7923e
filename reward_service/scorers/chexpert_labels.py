"""Rule-based CheXpert label agreement (``chexpert_labels``): no model weights needed.

Both reports are labelled with the 14 CheXpert observations by the NegBio-style rule labeler in
:mod:`reward_service.text.chexpert`; the score is the micro-F1 over the 14 observations (default),
over the five competition observations, or the label accuracy, with positive and uncertain counted
present ("rrg" mapping) or positive only. A pair where neither report has any observation present
has F1 1.0. All three numbers and both label vectors are in the details.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.chexpert import (
    CHEXPERT_OBSERVATIONS,
    CHEXPERT_TOP5,
    chexpert_labels,
    label_accuracy,
    label_f1,
    present_observations,
)


class CheXpertLabelsOptions(ScorerOptions):
    metric: Literal["micro_f1_14", "micro_f1_top5", "accuracy"] = Field(
        default="micro_f1_14",
        description="The score: micro-F1 over the 14 observations, over the top 5, or label accuracy over 14.",
    )
    mapping: Literal["rrg", "positive_only"] = Field(
        default="rrg",
        description="rrg: positive and uncertain count as present; positive_only: uncertain is absent.",
    )


class CheXpertLabelsScorer(RuleScorer[CheXpertLabelsOptions]):
    description = (
        "Rule-based CheXpert labeler (14 observations, negation and uncertainty rules): label micro-F1 "
        "over 14 (or top 5) or label accuracy between reference and candidate."
    )
    reads_report_rules = True

    def score_one(self, item: ScoreItem) -> ScoreResult:
        options = self.options
        reference_labels = chexpert_labels(item.reference)
        candidate_labels = chexpert_labels(item.candidate)
        uncertain_present = options.mapping == "rrg"
        reference = present_observations(reference_labels, uncertain_present=uncertain_present)
        candidate = present_observations(candidate_labels, uncertain_present=uncertain_present)
        numbers = {
            "micro_f1_14": label_f1(reference, candidate, CHEXPERT_OBSERVATIONS),
            "micro_f1_top5": label_f1(reference, candidate, CHEXPERT_TOP5),
            "accuracy": label_accuracy(reference, candidate, CHEXPERT_OBSERVATIONS),
        }
        return ScoreResult(
            numbers[options.metric],
            {
                **numbers,
                "reference_labels": dict(zip(CHEXPERT_OBSERVATIONS, reference_labels, strict=True)),
                "candidate_labels": dict(zip(CHEXPERT_OBSERVATIONS, candidate_labels, strict=True)),
            },
        )
