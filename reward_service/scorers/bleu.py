"""BLEU exactly as the ReXrank leaderboard computes it (the ``fast-bleu`` package's numbers).

Sentence BLEU against one reference with uniform weights over n-gram orders and the standard brevity
penalty. Like ``fast-bleu`` (which follows NLTK), an order with no matching n-gram contributes
``0.1 / total`` instead of zero, and a candidate with no matching unigram scores 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from functools import lru_cache
from itertools import repeat
from typing import ClassVar, NamedTuple

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult
from reward_service.text.tokens import rexrank_tokens

_EPSILON = 0.1


class _NGrams(NamedTuple):
    """The distinct n-grams of a text, and the count of each when some occur more than once."""

    distinct: AbstractSet[str]
    counts: Mapping[str, int]  # empty: every n-gram occurs once


def _ngrams(tokens: tuple[str, ...], n: int) -> _NGrams:
    # An n-gram is its words joined by spaces ("the heart"): no token holds a space, so the joining is
    # one to one, and strings, unlike tuples, cost the cyclic garbage collector nothing while cached.
    grams = tokens if n == 1 else list(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
    if n <= 2:  # nearly every report repeats some words and word pairs: count them at once
        counts = Counter(grams)
        return _NGrams(counts.keys(), counts)
    distinct = frozenset(grams)
    if len(distinct) == len(grams):
        return _NGrams(distinct, {})  # every n-gram once: most 3- and 4-grams of a report
    return _NGrams(distinct, Counter(grams))


def _matches(candidate: _NGrams, reference: _NGrams) -> int:
    """Clipped matches: each n-gram both have, counted as often as the rarer of the two has it."""
    common = candidate.distinct & reference.distinct
    if not (candidate.counts and reference.counts):
        return len(common)  # one side has each common n-gram once, so each matches once
    ones = repeat(1)  # an n-gram missing from a count occurs once
    return sum(map(min, map(candidate.counts.get, common, ones), map(reference.counts.get, common, ones)))


@lru_cache(maxsize=16384)
def _text_matches(reference_text: str, candidate_text: str, n: int) -> int:
    """Clipped n-gram matches of two reports, cached: BLEU-2 and BLEU-4 of one pair share orders 1 and 2."""
    return _matches(_text_ngrams(candidate_text, n), _text_ngrams(reference_text, n))


@lru_cache(maxsize=16384)
def _text_ngrams(text: str, n: int) -> _NGrams:
    """The n-grams of a report's ReXrank tokens, cached: BLEU-2 and BLEU-4 count the same ones, and in
    GRPO every candidate of a group shares the reference."""
    return _ngrams(_text_tokens(text), n)


@lru_cache(maxsize=8192)
def _text_tokens(text: str) -> tuple[str, ...]:
    return tuple(rexrank_tokens(text))


def sentence_bleu(
    reference: list[str] | tuple[str, ...],
    candidate: list[str] | tuple[str, ...],
    max_order: int,
    *,
    reference_text: str | None = None,
    candidate_text: str | None = None,
) -> tuple[float, list[float]]:
    """BLEU of ``candidate`` against ``reference`` (token lists) and the n-gram precisions.

    With the texts the tokens came from, their n-gram counts are taken from the cache.
    """
    if not candidate:
        return 0.0, [0.0] * max_order
    log_sum = 0.0
    precisions = []
    for n in range(1, max_order + 1):
        if reference_text is not None and candidate_text is not None:
            matches = _text_matches(reference_text, candidate_text, n)
        else:
            matches = _matches(_ngrams(tuple(candidate), n), _ngrams(tuple(reference), n))
        total = max(1, len(candidate) - n + 1)
        if matches == 0:
            if n == 1:
                return 0.0, [0.0] * max_order
            precision = _EPSILON / total
        else:
            precision = matches / total
        precisions.append(precision)
        log_sum += math.log(precision) / max_order
    ratio = len(candidate) / len(reference) if reference else math.inf
    brevity_penalty = 1.0 if ratio > 1 else math.exp(1 - 1 / ratio)
    return brevity_penalty * math.exp(log_sum), precisions


class _BleuScorer(RuleScorer):
    max_order: ClassVar[int]

    def score_one(self, item: ScoreItem) -> ScoreResult:
        score, precisions = sentence_bleu(
            _text_tokens(item.reference),
            _text_tokens(item.candidate),
            self.max_order,
            reference_text=item.reference,
            candidate_text=item.candidate,
        )
        return ScoreResult(score, {"precisions": precisions})


class Bleu2Scorer(_BleuScorer):
    description = "ReXrank BLEU-2: bigram BLEU with ReXrank's tokenisation (equal to fast-bleu)."
    max_order = 2


class Bleu4Scorer(_BleuScorer):
    description = "BLEU-4 with ReXrank's tokenisation (equal to fast-bleu with weights 1/4)."
    max_order = 4
