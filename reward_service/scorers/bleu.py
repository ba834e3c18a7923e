"""BLEU exactly as the ReXrank leaderboard computes it (the ``fast-bleu`` package's numbers).

Sentence BLEU against one reference with uniform weights over n-gram orders and the standard brevity
penalty. Like ``fast-bleu`` (which follows NLTK), an order with no matching n-gram contributes
``0.1 / total`` instead of zero, and a candidate with no matching unigram scores 0.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import ClassVar

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult
from reward_service.text.tokens import rexrank_tokens

_EPSILON = 0.1


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(reference: list[str], candidate: list[str], max_order: int) -> tuple[float, list[float]]:
    """BLEU of ``candidate`` against ``reference`` (token lists) and the n-gram precisions."""
    if not candidate:
        return 0.0, [0.0] * max_order
    log_sum = 0.0
    precisions = []
    for n in range(1, max_order + 1):
        candidate_ngrams = _ngrams(candidate, n)
        reference_ngrams = _ngrams(reference, n)
        matches = sum(min(count, reference_ngrams[gram]) for gram, count in candidate_ngrams.items())
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
            rexrank_tokens(item.reference), rexrank_tokens(item.candidate), self.max_order
        )
        return ScoreResult(score, {"precisions": precisions})


class Bleu2Scorer(_BleuScorer):
    description = "ReXrank BLEU-2: bigram BLEU with ReXrank's tokenisation (equal to fast-bleu)."
    max_order = 2


class Bleu4Scorer(_BleuScorer):
    description = "BLEU-4 with ReXrank's tokenisation (equal to fast-bleu with weights 1/4)."
    max_order = 4
