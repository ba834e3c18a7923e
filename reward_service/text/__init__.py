"""Text processing shared by the rule-based scorers: tokenisers, sentence splitting, report labelers."""

from __future__ import annotations


def clear_report_caches() -> None:
    """Forget every report already analysed (findings, CheXpert labels, summaries), e.g. to time cold work."""
    from reward_service.scorers import bleu
    from reward_service.text import chexpert, clinical_errors, findings

    for module in (chexpert, clinical_errors, findings, bleu):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
