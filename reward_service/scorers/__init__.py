"""The scorer registry: registered name -> ``module:Class``.

Adding a metric is one module under ``reward_service/scorers/`` plus one line here. Classes are
imported on first use, so a service-only install never imports torch for a profile without model
scorers.
"""

from __future__ import annotations

import importlib
from functools import cache

from reward_service.scorers.base import (
    RuleScorer,
    ScoreItem,
    Scorer,
    ScoreResult,
    ScorerKind,
    ScorerOptions,
    describe_exception,
)
from unirg.common.extras import require_extra

REGISTRY: dict[str, str] = {
    "bleu2": "reward_service.scorers.bleu:Bleu2Scorer",
    "bleu": "reward_service.scorers.bleu:Bleu4Scorer",
    "rouge_l": "reward_service.scorers.rouge:RougeLScorer",
    "report_guard": "reward_service.scorers.report_guard:ReportGuardScorer",
    "chexpert_labels": "reward_service.scorers.chexpert_labels:CheXpertLabelsScorer",
    "clinical_errors": "reward_service.scorers.clinical_errors:ClinicalErrorsScorer",
    "bertscore": "reward_service.scorers.bertscore:BertScoreScorer",
    "chexbert": "reward_service.scorers.chexbert:CheXbertF1Scorer",
    "semb": "reward_service.scorers.chexbert:SembScorer",
    "radcliq": "reward_service.scorers.radcliq:RadCliQScorer",
    "radgraph": "reward_service.scorers.radgraph:RadGraphScorer",
    "judge": "reward_service.scorers.judge:JudgeScorer",
}


class UnknownScorerError(KeyError):
    def __str__(self) -> str:
        return f"unknown scorer {self.args[0]!r}; registered scorers: {', '.join(sorted(REGISTRY))}"


@cache
def scorer_class(name: str) -> type[Scorer]:
    """The class registered under ``name``, imported on first use."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownScorerError(name) from None
    module_name, _, class_name = target.partition(":")
    with require_extra(f"the scorer {name!r}"):
        return getattr(importlib.import_module(module_name), class_name)


__all__ = [
    "REGISTRY",
    "RuleScorer",
    "ScoreItem",
    "ScoreResult",
    "Scorer",
    "ScorerKind",
    "ScorerOptions",
    "UnknownScorerError",
    "describe_exception",
    "scorer_class",
]
