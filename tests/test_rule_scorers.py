"""BLEU and ROUGE-L, checked against the reference packages and by hand (the guard: test_report_guard.py)."""

from __future__ import annotations

import random
import re

import pytest
from fast_bleu import BLEU
from rouge_score import rouge_scorer

from reward_service.scorers import ScoreItem
from reward_service.scorers.bleu import Bleu2Scorer, Bleu4Scorer, sentence_bleu
from reward_service.scorers.rouge import RougeLScorer, lcs_length, rouge_l
from reward_service.settings import Settings
from reward_service.text.tokens import alnum_runs, rexrank_tokens, rouge_tokens

EDGE_PAIRS = [
    ("No acute cardiopulmonary process.", "No acute cardiopulmonary process."),
    ("Heart size is normal. Lungs are clear.", "Lungs are clear. Heart size is normal."),
    ("Heart size is normal.", "heart"),
    ("Small left pleural effusion.", ""),
    ("", "Small left pleural effusion."),
    ("a b c d", "x y z w"),
    ("the cat the cat", "the the the the"),
    ("Effusion.", "Effusion."),
    ("Stable   double  spaces.\nNew line.", "Stable double spaces. New line."),
    ("Ünïcödé opacity, 1.5 cm.", "unicode opacity 1.5 cm"),
]


def fast_bleu_score(reference: str, candidate: str, order: int) -> float:
    weights = tuple([1.0 / order] * order)
    return BLEU([rexrank_tokens(reference)], {"s": weights}).get_score([rexrank_tokens(candidate)])["s"][0]


def real_pairs(shared_reports: dict[str, dict], count: int = 200) -> list[tuple[str, str]]:
    reports = [study["report"] for study in shared_reports.values()]
    rng = random.Random(7)
    return [(reports[i], reports[rng.randrange(len(reports))]) for i in range(count)]


@pytest.mark.parametrize(("reference", "candidate"), EDGE_PAIRS)
@pytest.mark.parametrize("order", [2, 4])
def test_bleu_equals_fast_bleu_on_edge_cases(reference: str, candidate: str, order: int) -> None:
    ours, _ = sentence_bleu(rexrank_tokens(reference), rexrank_tokens(candidate), order)
    assert ours == pytest.approx(fast_bleu_score(reference, candidate, order), abs=1e-9)


def test_bleu_equals_fast_bleu_on_real_reports(shared_reports: dict[str, dict]) -> None:
    bleu2 = Bleu2Scorer("bleu2", Bleu2Scorer.Options(), Settings())
    bleu4 = Bleu4Scorer("bleu", Bleu4Scorer.Options(), Settings())
    for reference, candidate in real_pairs(shared_reports):
        item = ScoreItem("x", reference, candidate)
        assert bleu2.score_one(item).score == pytest.approx(
            fast_bleu_score(reference, candidate, 2), abs=1e-9
        )
        assert bleu4.score_one(item).score == pytest.approx(
            fast_bleu_score(reference, candidate, 4), abs=1e-9
        )


def test_bleu_hand_computed() -> None:
    # 6 candidate tokens vs 5 reference tokens: p1 = 2/6, p2 = 1/5, no brevity penalty.
    score, precisions = sentence_bleu(["a", "b", "c", "d", "e"], ["a", "b", "x", "y", "z", "w"], 2)
    assert precisions == pytest.approx([2 / 6, 1 / 5])
    assert score == pytest.approx((2 / 6 * 1 / 5) ** 0.5)


def test_rexrank_tokenisation_splits_periods_only_on_spaces() -> None:
    assert rexrank_tokens("No effusion.  Heart\tnormal.") == ["no", "effusion", ".", "heart\tnormal", "."]


def test_rouge_tokens_by_byte_table_equal_the_regex_tokens() -> None:
    # Case folding by the byte table on ASCII text, by str.lower first on any other: the Kelvin sign
    # lower-cases to an ASCII "k", a dotted capital I to "i" and a combining dot.
    alphabet = "aAzZ09 .-_\n\t\u212a\u0130\u00e9\u00df\ud800"
    rng = random.Random(5)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        expected = re.findall(r"[a-z0-9]+", text.lower())
        assert list(rouge_tokens(text)) == expected
        assert alnum_runs(text.lower()) == expected


@pytest.mark.parametrize(("reference", "candidate"), EDGE_PAIRS)
def test_rouge_l_equals_rouge_score_on_edge_cases(reference: str, candidate: str) -> None:
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(reference, candidate)["rougeL"]
    precision, recall, f1 = rouge_l(reference, candidate)
    assert (precision, recall, f1) == pytest.approx(
        (expected.precision, expected.recall, expected.fmeasure), abs=1e-9
    )


def test_rouge_l_equals_rouge_score_on_real_reports(shared_reports: dict[str, dict]) -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    ours = RougeLScorer("rouge_l", RougeLScorer.Options(), Settings())
    for reference, candidate in real_pairs(shared_reports):
        expected = scorer.score(reference, candidate)["rougeL"].fmeasure
        assert ours.score_one(ScoreItem("x", reference, candidate)).score == pytest.approx(expected, abs=1e-9)


def test_bit_parallel_lcs_matches_dynamic_programming() -> None:
    rng = random.Random(3)
    for _ in range(300):
        first = [rng.choice("abcde") for _ in range(rng.randrange(0, 90))]
        second = [rng.choice("abcde") for _ in range(rng.randrange(0, 90))]
        table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
        for i, x in enumerate(first):
            for j, y in enumerate(second):
                table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
        assert lcs_length(first, second) == table[-1][-1]
