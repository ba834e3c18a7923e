"""Text processing shared by the rule-based scorers: tokenisers, sentence splitting, report labelers."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache


def clear_report_caches() -> None:
    """Forget every report already analysed (findings, CheXpert labels, summaries), e.g. to time cold work."""
    for clear in _report_cache_clearers():
        clear()


@cache
def _report_cache_clearers() -> tuple[Callable[[], None], ...]:
    """The ``cache_clear`` of every per-report cache, found once (benchmarks clear them per pair)."""
    from reward_service.scorers import bleu, report_guard
    from reward_service.text import chexpert, clinical_errors, findings, tokens

    clearers = {
        id(value): value.cache_clear
        for module in (chexpert, clinical_errors, findings, tokens, bleu, report_guard)
        for value in vars(module).values()
        if not isinstance(value, type)
        and callable(getattr(value, "cache_clear", None))
        and _per_report(value)
    }
    return tuple(clearers.values())


def _per_report(cache: object) -> bool:
    """Bounded caches hold reports; an unbounded ``functools.cache`` holds start-up data (the vocabulary)."""
    parameters = getattr(cache, "cache_parameters", None)
    return parameters is None or parameters()["maxsize"] is not None
