"""ROUGE-L F1 equal to ``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``.

The longest common subsequence is computed with a bit-parallel algorithm (Hyyrö, 2004) on Python
integers: one pass over the candidate with a few word-sized operations per token, instead of the
reference package's quadratic table, so a pair takes microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.tokens import rouge_tokens


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if not first or not second:
        return 0
    positions: dict[str, int] = {}
    for index, token in enumerate(first):
        positions[token] = positions.get(token, 0) | (1 << index)
    mask = (1 << len(first)) - 1
    row = mask
    # A token that ``first`` lacks leaves the row as it is, so only the others are walked (found in C).
    for token_positions in filter(None, map(positions.get, second)):
        matches = row & token_positions
        row = ((row + matches) | (row - matches)) & mask
    return len(first) - row.bit_count()


def rouge_l(reference: str, candidate: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of ROUGE-L."""
    reference_tokens = rouge_tokens(reference)
    candidate_tokens = rouge_tokens(candidate)
    if not reference_tokens or not candidate_tokens:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(reference_tokens, candidate_tokens)
    precision = lcs / len(candidate_tokens)
    recall = lcs / len(reference_tokens)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


class RougeLScorer(RuleScorer[ScorerOptions]):
    description = "ROUGE-L F1 (equal to the rouge-score package without stemming)."

    def score_one(self, item: ScoreItem) -> ScoreResult:
        precision, recall, f1 = rouge_l(item.reference, item.candidate)
        return ScoreResult(f1, {"precision": precision, "recall": recall})
