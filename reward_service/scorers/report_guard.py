"""Degenerate-output guard: empty reports, repeated sentences or phrases, runaway length.

Policies under RL pressure find degenerate outputs that some metrics still pay for (repeating a
sentence raises recall; a very long report mentions everything). The guard scores a healthy report 1
and multiplies in a penalty for each problem, so a profile can weight it or mark it required.
"""

from __future__ import annotations

from pydantic import Field

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.sentences import split_sentences
from reward_service.text.tokens import rouge_tokens


class ReportGuardOptions(ScorerOptions):
    max_length_ratio: float = Field(3.0, gt=0, description="Words allowed per reference word before penalty.")
    min_length_allowance: int = Field(
        60, ge=1, description="Words always allowed, however short the reference."
    )
    repeat_ngram: int = Field(4, ge=2, description="n of the word n-grams checked for looping text.")


class ReportGuardScorer(RuleScorer):
    description = (
        "1 for a healthy report; lower for empty text, repeated sentences or n-grams, runaway length."
    )
    Options = ReportGuardOptions

    def score_one(self, item: ScoreItem) -> ScoreResult:
        options: ReportGuardOptions = self.options  # type: ignore[assignment]
        words = rouge_tokens(item.candidate)
        if not words:
            return ScoreResult(0.0, {"flags": ["empty"]})
        flags = []
        sentences = [" ".join(rouge_tokens(sentence)) for sentence in split_sentences(item.candidate)]
        sentences = [sentence for sentence in sentences if sentence]
        repeated_sentences = len(sentences) - len(set(sentences))
        sentence_factor = 1.0 - repeated_sentences / len(sentences) if sentences else 1.0
        if repeated_sentences:
            flags.append("repeated_sentences")
        n = options.repeat_ngram
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        distinct_ratio = len(set(grams)) / len(grams) if grams else 1.0
        # Natural reports repeat few 4-grams; below half distinct the text is looping.
        loop_factor = min(1.0, distinct_ratio / 0.5)
        if loop_factor < 1.0:
            flags.append("looping_text")
        allowed = max(
            options.min_length_allowance, options.max_length_ratio * len(rouge_tokens(item.reference))
        )
        length_factor = min(1.0, allowed / len(words))
        if length_factor < 1.0:
            flags.append("runaway_length")
        return ScoreResult(
            sentence_factor * loop_factor * length_factor,
            {
                "flags": flags,
                "words": len(words),
                "allowed_words": allowed,
                "repeated_sentences": repeated_sentences,
                "distinct_ngram_ratio": distinct_ratio,
            },
        )
