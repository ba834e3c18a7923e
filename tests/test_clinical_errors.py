"""The deterministic clinical-error scorer: each CheXprompt category on hand-built pairs.

Expected errors and weights are derived by hand from the rule files in ``reward_service/rules/``
(urgency: pneumothorax 2.0, effusion / airspace 1.5, cardiomegaly and atelectasis 1.0, granuloma
0.25; attribute costs as shares of those in attributes.yaml). tests/test_graded_errors.py holds the
hand-checked cases per attribute kind.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from reward_service.scorers import ScoreItem, ScoreResult, scorer_class
from reward_service.settings import Settings
from reward_service.text.clinical_errors import compare_reports
from reward_service.text.findings import FINDINGS, extract_findings


def _score_all(pairs: list[tuple[str, str]], **options: object) -> list[ScoreResult]:
    cls = scorer_class("clinical_errors")
    scorer = cls("clinical_errors", cls.Options.model_validate(options), Settings())
    items = [ScoreItem(id=str(i), reference=ref, candidate=cand) for i, (ref, cand) in enumerate(pairs)]
    return asyncio.run(scorer.score_batch(items, {}))


def _score(reference: str, candidate: str, **options: object) -> ScoreResult:
    return _score_all([(reference, candidate)], **options)[0]


def _errors(reference: str, candidate: str) -> list[tuple[str, str, float]]:
    return [(e.category, e.finding, e.weight) for e in compare_reports(reference, candidate) if e.significant]


PARAPHRASES = [
    ("No pleural effusion.", "There is no evidence of pleural fluid."),
    ("The heart is normal in size.", "Normal cardiac silhouette."),
    ("No pneumothorax.", "There is no pneumothorax."),
    ("Lungs are clear. No focal consolidation.", "No focal airspace consolidation is seen."),
    ("Small right pleural effusion.", "There is a small effusion on the right."),
    ("Mild cardiomegaly.", "The heart is mildly enlarged."),
    ("Right lower lobe pneumonia.", "Pneumonia in the right lower lobe."),
    ("Small bilateral pleural effusions.", "Small left and right pleural effusions."),
    (
        "The cardiomediastinal silhouette is within normal limits. No pneumothorax or effusion.",
        "Normal cardiomediastinal contours. No pleural effusion. No pneumothorax.",
    ),
    ("Left lower lobe atelectasis.", "Atelectasis at the left lung base."),
    (
        "Heart size normal. Lungs clear.",
        "Heart size normal. Lungs clear. No pneumothorax.",
    ),  # pertinent negative
    ("Moderate left pleural effusion.", "Moderate-sized left pleural effusion."),
]


@pytest.mark.parametrize(("reference", "candidate"), PARAPHRASES)
def test_paraphrases_cost_nothing(reference: str, candidate: str) -> None:
    result = _score(reference, candidate)
    assert result.score == 1.0, result.details["errors"]
    assert result.details["errors"] == []
    assert _score(candidate, reference).score == 1.0


def test_negation_flip_is_a_missed_finding() -> None:
    assert _errors("Small right pleural effusion.", "No pleural effusion.") == [
        ("b", "pleural_effusion", 1.5)
    ]
    result = _score("Small right pleural effusion.", "No pleural effusion.")
    assert result.score == pytest.approx(1 / 2.5)
    assert result.details["counts"]["missed_finding"] == 1
    (error,) = result.details["errors"]
    assert error["reference_evidence"] == "small right pleural effusion."
    assert error["candidate_evidence"] == "no pleural effusion."


def test_negated_finding_in_candidate_is_a_false_finding() -> None:
    assert _errors("No pneumothorax.", "Small left pneumothorax.") == [("a", "pneumothorax", 2.0)]


def test_hallucinated_finding_costs_its_significance() -> None:
    assert _errors("Lungs are clear.", "Lungs are clear. Right pneumothorax.") == [("a", "pneumothorax", 2.0)]
    assert _score("Lungs are clear.", "Lungs are clear. Right pneumothorax.").score == pytest.approx(1 / 3)
    # A hedged hallucination costs half.
    assert _errors("Lungs are clear.", "Possible right pneumothorax.") == [("a", "pneumothorax", 1.0)]


def test_omission() -> None:
    reference = "Right lower lobe pneumonia. Small left pleural effusion."
    assert _errors(reference, "Right lower lobe pneumonia.") == [("b", "pleural_effusion", 1.5)]


def test_laterality_swap() -> None:
    # A contradictory side costs half the finding's weight, one side against both sides a third.
    assert _errors("Small right pleural effusion.", "Small left pleural effusion.") == [
        ("c", "pleural_effusion", 0.75)
    ]
    assert _errors("Right upper lobe opacity.", "Bilateral upper lobe opacities.") == [
        ("c", "airspace", pytest.approx(0.525))
    ]
    # A side on one report only is at most a minor error.
    assert _errors("Right pleural effusion.", "Pleural effusion.") == []


def test_severity_change() -> None:
    # A quarter of the weight per level: small vs large is two levels, small vs moderate one (minor).
    assert _errors("Small right pleural effusion.", "Large right pleural effusion.") == [
        ("d", "pleural_effusion", 0.75)
    ]
    assert _errors("Small right pleural effusion.", "Moderate right pleural effusion.") == []
    assert _errors("Mild cardiomegaly.", "Severe cardiomegaly.") == [("d", "cardiomegaly", 0.5)]
    # An overlapping range is no error.
    assert _errors("Small to moderate left effusion.", "Moderate left effusion.") == []


def test_comparison_errors() -> None:
    # (e): the candidate states a change the reference (which makes no comparison) does not.
    assert _errors(
        "Small left pleural effusion.", "Small left pleural effusion, increased since the prior exam."
    ) == [("e", "pleural_effusion", 0.75)]
    # (f): omitting the reference's change is a minor error.
    assert _errors("Left pleural effusion has increased.", "Left pleural effusion.") == []
    # (e): contradicting it (worse vs better) is significant.
    assert _errors("Left pleural effusion has increased.", "Left pleural effusion has decreased.") == [
        ("e", "pleural_effusion", 0.75)
    ]
    # A report-level hallucinated prior costs 0.5.
    assert _errors("No acute disease.", "No change from the prior study.") == [("e", "comparison", 0.5)]
    # "Stable" alone weighs a quarter (1.0 x 0.25 for cardiomegaly: minor), and the omitted "stable"
    # of the reference is minor too.
    assert _errors("Mild cardiomegaly.", "Stable mild cardiomegaly.") == []
    assert _errors("Stable mild cardiomegaly.", "Mild cardiomegaly.") == []
    # Both compare with the prior: "stable" on one finding only is a light, insignificant error.
    assert (
        _errors(
            "Stable mild cardiomegaly. Pneumothorax has resolved.",
            "Mild cardiomegaly. Pneumothorax has resolved.",
        )
        == []
    )


def test_significance_weights_rank_errors() -> None:
    missed_pneumothorax = _score("Small right pneumothorax.", "Lungs are clear.").score
    missed_effusion = _score("Small right pleural effusion.", "Lungs are clear.").score
    missed_granuloma = _score("Calcified granuloma in the right upper lobe.", "Lungs are clear.")
    assert missed_pneumothorax < missed_effusion < missed_granuloma.score
    # A missed granuloma (0.25) is listed but is not clinically significant: it costs a fifth.
    assert missed_granuloma.score == pytest.approx(1 / (1 + 0.2 * 0.25))
    assert missed_granuloma.details["insignificant_counts"]["missed_finding"] == 1
    assert missed_granuloma.details["errors"][0]["finding"] == "granuloma"


def test_options_override_weights_and_threshold() -> None:
    reference, candidate = "Calcified granuloma in the right upper lobe.", "Lungs are clear."
    assert _score(reference, candidate, min_weight=0.0).score == pytest.approx(1 / 1.25)
    assert _score(reference, candidate, weights={"granuloma": 1.0}).score == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown findings"):
        scorer_class("clinical_errors").Options.model_validate({"weights": {"dragons": 1.0}})


def test_line_and_tube_position() -> None:
    reference = "Endotracheal tube tip 4 cm above the carina."
    # A tube in the right mainstem bronchus is malpositioned (weight 2.0); an NG tube coiled in the
    # stomach is where it belongs.
    assert _errors(reference, "Endotracheal tube tip in the right mainstem bronchus.") == [
        ("a", "device_malposition", 2.0)
    ]
    assert _errors("Nasogastric tube coiled in the stomach.", "Nasogastric tube in the stomach.") == []


def test_findings_beyond_the_chexpert_labels() -> None:
    report = (
        "Large hiatal hernia. Mild dextroscoliosis. Emphysema. Calcified granuloma. "
        "8 mm nodule in the right upper lobe. Degenerative changes of the spine."
    )
    found = {mention.concept.finding for mention in extract_findings(report).mentions if mention.present}
    assert {"hernia", "spine_curvature", "emphysema", "granuloma", "nodule", "degenerative"} <= found
    assert set(found) <= set(FINDINGS)


def test_empty_and_unicode_reports() -> None:
    assert _score("", "").score == 1.0
    assert _score("Small right pleural effusion.", "").score == pytest.approx(1 / 2.5)
    assert _score("Épanchement pleural droit. No pneumothorax ☃.", "No pneumothorax.").error is None


def test_real_reports_against_themselves_and_others(shared_reports: dict[str, dict]) -> None:
    reports = [study["report"] for study in shared_reports.values()]
    for report, result in zip(reports, _score_all([(report, report) for report in reports]), strict=True):
        assert result.error is None
        assert result.details["errors"] == [], report
    shuffled = reports[:]
    random.Random(0).shuffle(shuffled)
    results = _score_all(list(zip(reports, shuffled, strict=True)))
    assert all(result.error is None and 0.0 < result.score <= 1.0 for result in results)
    # Different studies disagree somewhere: mismatched pairs must not all look perfect.
    assert sum(result.score < 1.0 for result in results) > len(results) // 10
