"""Errors graded the way radiologists grade them: hand-checked cases for each attribute kind.

Each case is a (reference, candidate) pair written and checked by hand, with the errors a radiologist
would count: ``(category, finding, attribute, significant)``. Orderings check that the cost follows
the clinical weight: a larger discrepancy costs more, a wrong attribute less than a missed finding,
an urgent finding more than a benign one.
"""

from __future__ import annotations

import asyncio

import pytest

from reward_service.scorers import ScoreItem, scorer_class
from reward_service.settings import Settings
from reward_service.text.clinical_errors import compare_reports

Error = tuple[str, str, str | None, bool]


def _errors(reference: str, candidate: str, prior: str | None = None) -> set[Error]:
    return {
        (error.category, error.finding, error.attribute, error.significant)
        for error in compare_reports(reference, candidate, prior=prior)
    }


def _score(reference: str, candidate: str, prior: str | None = None) -> float:
    cls = scorer_class("clinical_errors")
    scorer = cls("clinical_errors", cls.Options(), Settings())
    item = ScoreItem(id="x", reference=reference, candidate=candidate, prior_report=prior)
    (result,) = asyncio.run(scorer.score_batch([item], {}))
    assert result.score is not None
    return result.score


def _check(cases: list[tuple[str, str, set[Error]]]) -> None:
    for reference, candidate, expected in cases:
        assert _errors(reference, candidate) == expected, (reference, candidate)


def _ranked(reference: str, candidates: list[str], prior: str | None = None) -> None:
    """Each candidate scores strictly above the next."""
    scores = [_score(reference, candidate, prior) for candidate in candidates]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores), list(
        zip(candidates, scores, strict=True)
    )


SIZE_CASES: list[tuple[str, str, set[Error]]] = [
    ("An 8 mm nodule in the right upper lobe.", "An 8 mm nodule in the right upper lobe.", set()),
    ("An 8 mm nodule in the right upper lobe.", "A 9 mm nodule in the right upper lobe.", set()),
    ("A 2.5 x 1.8 cm mass in the left upper lobe.", "A 2.4 x 2.0 cm mass in the left upper lobe.", set()),
    ("A 2.5 cm mass in the left upper lobe.", "A 25 mm mass in the left upper lobe.", set()),
    (
        "An 8 mm nodule in the right upper lobe.",
        "A 12 mm nodule in the right upper lobe.",
        {("d", "nodule", "size", False)},
    ),
    (
        "An 8 mm nodule in the right upper lobe.",
        "A 3 cm nodule in the right upper lobe.",
        {("d", "nodule", "size", True)},
    ),
    (
        "A 5 cm mass in the right lower lobe.",
        "A 2 cm mass in the right lower lobe.",
        {("d", "mass", "size", True)},
    ),
    (
        "A 3 x 2 cm mass in the right hilum.",
        "A 4 x 3 cm mass in the right hilum.",
        {("d", "mass", "size", False)},
    ),
    (
        "A 3 x 2 cm mass in the right hilum.",
        "A 6 x 4 cm mass in the right hilum.",
        {("d", "mass", "size", True)},
    ),
    ("A 1 cm nodule at the left base.", "A nodule at the left base.", set()),
    ("A 6 mm nodule in the lingula.", "A 6 mm nodule in the lingula. No pneumothorax.", set()),
]

POSITION_CASES: list[tuple[str, str, set[Error]]] = [
    ("ET tube tip 5 cm above the carina.", "Endotracheal tube tip 5 cm above the carina.", set()),
    ("ET tube tip 5 cm above the carina.", "ET tube tip 4.5 cm above the carina.", set()),
    (
        "ET tube tip 5 cm above the carina.",
        "ET tube tip 3 cm above the carina.",
        {("c", "endotracheal_tube", "position", False)},
    ),
    # A tip 1 cm above the carina is too low: a malpositioned tube, an urgent finding of its own.
    (
        "ET tube tip 5 cm above the carina.",
        "ET tube tip 1 cm above the carina.",
        {("c", "endotracheal_tube", "position", False), ("a", "device_malposition", None, True)},
    ),
    (
        "ET tube tip 1 cm above the carina.",
        "ET tube tip 5 cm above the carina.",
        {("c", "endotracheal_tube", "position", False), ("b", "device_malposition", None, True)},
    ),
    ("ET tube tip 9 cm above the carina.", "ET tube tip 9 cm above the carina.", set()),
    (
        "ET tube tip 4 cm above the carina.",
        "ET tube tip 9 cm above the carina.",
        {("c", "endotracheal_tube", "position", True), ("a", "device_malposition", None, True)},
    ),
    ("ET tube tip 4 cm above the carina.", "ET tube in standard position.", set()),
    (
        "ET tube 4 cm above the carina. NG tube in the stomach.",
        "ET tube 4 cm above the carina.",
        {("b", "enteric_tube", None, True)},
    ),
    (
        "Right PICC line tip in the SVC.",
        "Right PICC with tip in the SVC. ET tube 4 cm above the carina.",
        {("a", "endotracheal_tube", None, True)},
    ),
    # A position named instead of measured, or a recommendation to move the device, is a malposition too.
    (
        "NG tube tip in the stomach.",
        "NG tube tip in the distal esophagus, recommend advancing.",
        {("a", "device_malposition", None, True)},
    ),
    ("The enteric tube terminates in the esophagus.", "NG tube tip in the distal esophagus.", set()),
    (
        "Right PICC line tip in the lower superior vena cava.",
        "Right PICC line coiled in the right internal jugular vein, recommend repositioning.",
        {("a", "device_malposition", None, True)},
    ),
]

LOCATION_CASES: list[tuple[str, str, set[Error]]] = [
    ("Right upper lobe consolidation.", "Consolidation in the right upper lobe.", set()),
    (
        "Right upper lobe consolidation.",
        "Right lower lobe consolidation.",
        {("c", "airspace", "location", True)},
    ),
    # The direction of a mediastinal shift is its side, however it is worded.
    (
        "Large right pneumothorax with leftward mediastinal shift.",
        "Large right-sided pneumothorax with shift of the mediastinum to the left.",
        set(),
    ),
    (
        "Large left pleural effusion with rightward mediastinal shift.",
        "Large left pleural effusion with mediastinal shift to the left.",
        {("c", "mediastinal_shift", "location", True)},
    ),
    (
        "Large right pneumothorax with leftward mediastinal shift.",
        "Large right pneumothorax.",
        {("b", "mediastinal_shift", None, True)},
    ),
    (
        "Right upper lobe consolidation.",
        "Left upper lobe consolidation.",
        {("c", "airspace", "location", True)},
    ),
    ("Right upper lobe consolidation.", "Right lung consolidation.", {("c", "airspace", "location", False)}),
    ("Right upper lobe consolidation.", "Consolidation.", {("c", "airspace", "location", False)}),
    ("Consolidation in the right lung.", "Right upper lobe consolidation.", set()),
    (
        "Small left pleural effusion.",
        "Small bilateral pleural effusions.",
        {("c", "pleural_effusion", "location", True)},
    ),
    (
        "Small bilateral pleural effusions.",
        "Small right pleural effusion.",
        {("c", "pleural_effusion", "location", True)},
    ),
    ("Left basilar atelectasis.", "Left upper lobe atelectasis.", {("c", "atelectasis", "location", True)}),
    ("Left basilar atelectasis.", "Atelectasis at the left base.", set()),
    ("Lingular atelectasis.", "Left lower lobe atelectasis.", {("c", "atelectasis", "location", True)}),
    (
        "Calcified granuloma in the right upper lobe.",
        "Calcified granuloma in the left lower lobe.",
        {("c", "granuloma", "location", False)},
    ),
]

SEVERITY_CASES: list[tuple[str, str, set[Error]]] = [
    ("Small left pleural effusion.", "Small left pleural effusion.", set()),
    ("Small left pleural effusion.", "Mild left pleural effusion.", set()),
    (
        "Small left pleural effusion.",
        "Trace left pleural effusion.",
        {("d", "pleural_effusion", "severity", False)},
    ),
    (
        "Small left pleural effusion.",
        "Moderate left pleural effusion.",
        {("d", "pleural_effusion", "severity", False)},
    ),
    (
        "Small left pleural effusion.",
        "Large left pleural effusion.",
        {("d", "pleural_effusion", "severity", True)},
    ),
    (
        "Trace left pleural effusion.",
        "Large left pleural effusion.",
        {("d", "pleural_effusion", "severity", True)},
    ),
    ("Mild cardiomegaly.", "Moderate cardiomegaly.", {("d", "cardiomegaly", "severity", False)}),
    ("Mild cardiomegaly.", "Severe cardiomegaly.", {("d", "cardiomegaly", "severity", True)}),
    ("Mild pulmonary edema.", "Severe pulmonary edema.", {("d", "edema", "severity", True)}),
    ("Small to moderate left effusion.", "Moderate left effusion.", set()),
    ("Moderate pulmonary edema.", "Pulmonary edema.", set()),
]

CHANGE_CASES: list[tuple[str, str, set[Error]]] = [
    ("Improving right lower lobe pneumonia.", "Improving right lower lobe pneumonia.", set()),
    (
        "Improving right lower lobe pneumonia.",
        "Worsening right lower lobe pneumonia.",
        {("e", "airspace", "change", True)},
    ),
    ("Worsening pulmonary edema.", "Decreased pulmonary edema.", {("e", "edema", "change", True)}),
    (
        "Interval increase in the left pleural effusion.",
        "Left pleural effusion has improved.",
        {("e", "pleural_effusion", "change", True)},
    ),
    ("Worsening pulmonary edema.", "Pulmonary edema.", {("f", "edema", "change", False)}),
    (
        "Stable mild cardiomegaly. Worsening left effusion.",
        "Stable mild cardiomegaly. Left effusion.",
        {("f", "pleural_effusion", "change", False)},
    ),
    (
        "Stable small left effusion.",
        "Worsening small left effusion.",
        {("e", "pleural_effusion", "change", True)},
    ),
    ("Stable mild cardiomegaly.", "Worsening mild cardiomegaly.", {("e", "cardiomegaly", "change", False)}),
    (
        "Small left pleural effusion.",
        "Small left pleural effusion, increased since the prior exam.",
        {("e", "pleural_effusion", "change", True)},
    ),
    ("No acute disease.", "No change from the prior study.", {("e", "comparison", "comparison", True)}),
    ("Stable mild cardiomegaly.", "Mild cardiomegaly.", {("f", "cardiomegaly", "change", False)}),
]

PRIOR_CASES: list[tuple[str, str, str, set[Error]]] = [
    # (prior, reference, candidate, errors)
    (
        "Small right pleural effusion.",
        "Small right pleural effusion.",
        "New small right pleural effusion.",
        {("e", "pleural_effusion", "change", True)},
    ),
    (
        "No pleural effusion.",
        "Small right pleural effusion.",
        "New small right pleural effusion.",
        {("e", "pleural_effusion", "change", False)},
    ),
    (
        "Lungs are clear.",
        "Right lower lobe pneumonia.",
        "Unchanged right lower lobe pneumonia.",
        {("e", "airspace", "change", True)},
    ),
    (
        "Right lower lobe pneumonia.",
        "Right lower lobe pneumonia.",
        "Unchanged right lower lobe pneumonia.",
        {("e", "airspace", "change", False)},
    ),
]

CERTAINTY_CASES: list[tuple[str, str, set[Error]]] = [
    (
        "Right lower lobe pneumonia.",
        "Possible right lower lobe pneumonia.",
        {("d", "airspace", "certainty", False)},
    ),
    (
        "Possible right lower lobe pneumonia.",
        "Right lower lobe pneumonia.",
        {("d", "airspace", "certainty", False)},
    ),
    (
        "Small right pneumothorax.",
        "Possible small right pneumothorax.",
        {("d", "pneumothorax", "certainty", True)},
    ),
    ("Right lower lobe pneumonia.", "No pneumonia.", {("b", "airspace", None, True)}),
    ("Possible right lower lobe pneumonia.", "No pneumonia.", {("b", "airspace", None, True)}),
    ("Lungs are clear.", "Possible right lower lobe pneumonia.", {("a", "airspace", None, True)}),
    ("Lungs are clear.", "Right lower lobe pneumonia.", {("a", "airspace", None, True)}),
    ("Cannot exclude a small left pneumothorax.", "Possible small left pneumothorax.", set()),
    (
        "Small left pleural effusion.",
        "Small left pleural effusion is likely.",
        {("d", "pleural_effusion", "certainty", False)},
    ),
    ("Pneumothorax is not seen.", "No pneumothorax.", set()),
]

PRECISION_CASES: list[tuple[str, str, set[Error]]] = [
    ("Displaced fracture of the left sixth rib.", "Displaced fracture of the left sixth rib.", set()),
    (
        "Displaced fracture of the left sixth rib.",
        "Left chest wall abnormality.",
        {("b", "fracture", "specificity", True)},
    ),
    (
        "Displaced fracture of the left sixth rib.",
        "No acute osseous abnormality.",
        {("b", "fracture", None, True)},
    ),
    ("Displaced fracture of the left sixth rib.", "The lungs are clear.", {("b", "fracture", None, True)}),
    (
        "A 3 cm mass in the right upper lobe.",
        "A right upper lobe lesion.",
        {("b", "mass", "specificity", True)},
    ),
    (
        "Right upper lobe lesion.",
        "A 3 cm mass in the right upper lobe.",
        {("a", "mass", "specificity", True)},
    ),
    (
        "ET tube and NG tube in place.",
        "Tubes in place.",
        {("b", "endotracheal_tube", "specificity", True), ("b", "enteric_tube", "specificity", True)},
    ),
    ("Right lower lobe pneumonia.", "Right lower lobe consolidation.", set()),
    ("Right lower lobe pneumonia.", "Right lower lobe opacity.", set()),
    ("Left chest wall abnormality.", "Left chest wall abnormality.", set()),
    # Naming the devices the reference only calls "lines and tubes" is more specific, not wrong.
    (
        "Lines and tubes unchanged.",
        "ET tube, NG tube and right PICC unchanged.",
        {
            ("a", "endotracheal_tube", "specificity", False),
            ("a", "enteric_tube", "specificity", False),
            ("a", "central_line", "specificity", False),
        },
    ),
]

CHARACTERISATION_CASES: list[tuple[str, str, set[Error]]] = [
    # One lesion called a related finding is one error, not a missed and a false one.
    (
        "A 6 mm nodule in the right upper lobe.",
        "A 3 cm right upper lobe mass.",
        {("a", "mass", "characterization", True)},
    ),
    (
        "Left lower lobe atelectasis.",
        "Left lower lobe consolidation.",
        {("a", "airspace", "characterization", True)},
    ),
    (
        "Calcified granuloma in the left upper lobe.",
        "Nodule in the left upper lobe.",
        {("a", "nodule", "characterization", True)},
    ),
    (
        "Mild interstitial edema.",
        "Increased interstitial markings.",
        {("a", "interstitial", "characterization", True)},
    ),
    ("Old healed left rib fractures.", "Left rib fractures.", {("a", "fracture", "characterization", True)}),
    # ... but not when the lesions lie on other sides, or a report tells the two findings apart.
    (
        "Left lower lobe atelectasis.",
        "Right lower lobe consolidation.",
        {("a", "airspace", None, True), ("b", "atelectasis", None, True)},
    ),
    (
        "Left lower lobe atelectasis. No consolidation.",
        "Left lower lobe consolidation.",
        {("a", "airspace", None, True), ("b", "atelectasis", None, True)},
    ),
    # A description explained by the finding after it is that finding.
    (
        "Bibasilar opacities, likely atelectasis.",
        "Bibasilar atelectasis.",
        {("d", "atelectasis", "certainty", False)},
    ),
    ("Left basilar opacity consistent with atelectasis.", "Left basilar atelectasis.", set()),
    (
        "Persistent bibasilar opacities, likely atelectasis.",
        "Persistent bibasilar opacities.",
        {("b", "atelectasis", None, True)},
    ),
    (
        "Persistent bibasilar opacities.",
        "Persistent bibasilar opacities, likely atelectasis.",
        {("a", "atelectasis", None, True)},
    ),
    (
        "Right lower lobe opacity and small right effusion.",
        "Small right effusion.",
        {("b", "airspace", None, True)},
    ),
]

SYNONYM_CASES: list[tuple[str, str, set[Error]]] = [
    ("Cardiomegaly.", "Enlarged heart.", set()),
    ("The heart is enlarged.", "Cardiomegaly.", set()),
    ("ET tube in place.", "Endotracheal tube in place.", set()),
    ("NG tube in the stomach.", "Nasogastric tube in the stomach.", set()),
    ("Pulmonary edema.", "Findings of fluid overload.", set()),
    ("Small right pneumothorax.", "Small right PTX.", set()),
    ("Right pleural effusion.", "Right pleural fluid.", set()),
    ("Left lower lobe collapse.", "Left lower lobe atelectasis.", set()),
    # Normal statements on one side only are no errors.
    (
        "Heart size is normal. Lungs are clear.",
        "Heart size is normal. Lungs are clear. No pneumothorax. No effusion.",
        set(),
    ),
    ("No pneumothorax. No pleural effusion. No focal consolidation.", "The lungs are clear.", set()),
    (
        "Normal cardiomediastinal silhouette.",
        "Heart size and mediastinal contours are within normal limits.",
        set(),
    ),
]


@pytest.mark.parametrize(
    "cases",
    [
        SIZE_CASES,
        POSITION_CASES,
        LOCATION_CASES,
        SEVERITY_CASES,
        CHANGE_CASES,
        CERTAINTY_CASES,
        PRECISION_CASES,
        CHARACTERISATION_CASES,
        SYNONYM_CASES,
    ],
    ids=[
        "size",
        "position",
        "location",
        "severity",
        "change",
        "certainty",
        "precision",
        "characterisation",
        "synonyms",
    ],
)
def test_hand_checked_cases(cases: list[tuple[str, str, set[Error]]]) -> None:
    assert len(cases) >= 10
    _check(cases)


@pytest.mark.parametrize(("prior", "reference", "candidate", "expected"), PRIOR_CASES)
def test_the_prior_report_decides_change_claims(
    prior: str, reference: str, candidate: str, expected: set[Error]
) -> None:
    assert _errors(reference, candidate, prior) == expected


def test_without_a_prior_the_change_claim_is_judged_against_the_reference_only() -> None:
    reference, candidate = "Small right pleural effusion.", "New small right pleural effusion."
    assert _errors(reference, candidate) == {("e", "pleural_effusion", "change", True)}
    # The prior contradicts the claim: it costs more than the same claim the prior supports.
    assert _score(reference, candidate, prior="Small right pleural effusion.") < _score(
        reference, candidate, prior="No pleural effusion."
    )


def test_cost_grows_with_the_discrepancy() -> None:
    _ranked(
        "An 8 mm nodule in the right upper lobe.",
        [
            "A 9 mm nodule in the right upper lobe.",
            "A 12 mm nodule in the right upper lobe.",
            "A 2 cm nodule in the right upper lobe.",
            "The lungs are clear.",
        ],
    )
    _ranked(
        "Small left pleural effusion.",
        ["Small left pleural effusion.", "Moderate left pleural effusion.", "Large left pleural effusion."],
    )
    _ranked(
        "ET tube tip 5 cm above the carina.",
        [
            "ET tube tip 4 cm above the carina.",
            "ET tube tip 3 cm above the carina.",
            "ET tube tip 1 cm above the carina.",
        ],
    )


def test_location_hierarchy_orders_errors() -> None:
    _ranked(
        "Right upper lobe consolidation.",
        [
            "Consolidation in the right upper lobe.",  # same
            "Right lung consolidation.",  # less specific, compatible
            "Right lower lobe consolidation.",  # contradictory zone
            "Left lower lobe consolidation.",  # contradictory side and zone
            "The lungs are clear.",  # missed
        ],
    )


def test_diagnostic_precision_specific_beats_vague_beats_nothing() -> None:
    _ranked(
        "Displaced fracture of the left sixth rib.",
        ["Displaced fracture of the left sixth rib.", "Left chest wall abnormality.", "The lungs are clear."],
    )


def test_partial_credit_one_wrong_attribute_beats_two_beats_a_miss() -> None:
    reference = "Small right pleural effusion."
    _ranked(
        reference,
        [
            "Small right pleural effusion.",
            "Large right pleural effusion.",  # severity
            "Large left pleural effusion.",  # severity and side
            "No pleural effusion.",  # missed
        ],
    )
    _ranked(
        "Right lower lobe pneumonia.",
        ["Possible right lower lobe pneumonia.", "Possible left lower lobe pneumonia.", "No pneumonia."],
    )


def test_urgent_findings_cost_more_than_benign_ones() -> None:
    clear = "The lungs are clear."
    missed = {
        finding: _score(reference, clear)
        for finding, reference in {
            "pneumothorax": "Small right pneumothorax.",
            "malposition": "The endotracheal tube is malpositioned in the right mainstem bronchus.",
            "free air": "Free air under the right hemidiaphragm.",
            "effusion": "Small right pleural effusion.",
            "nodule": "A nodule in the right upper lobe.",
            "granuloma": "Calcified granuloma in the right upper lobe.",
            "degenerative": "Degenerative changes of the thoracic spine.",
        }.items()
    }
    for urgent in ("pneumothorax", "malposition", "free air"):
        assert missed[urgent] < missed["effusion"] < missed["nodule"] < missed["granuloma"], missed
    assert missed["granuloma"] == missed["degenerative"] > 0.9


def test_errors_carry_character_spans_in_both_texts() -> None:
    reference = "Heart size is normal. Small RIGHT pleural effusion."
    candidate = "Heart size is normal. Large left pleural effusion. New pneumothorax."
    errors = compare_reports(reference, candidate)
    assert errors
    for error in errors:
        for text, spans in ((reference, error.reference_spans), (candidate, error.candidate_spans)):
            for start, end in spans:
                assert 0 <= start < end <= len(text)
    by_kind = {(error.finding, error.attribute): error for error in errors}
    location = by_kind[("pleural_effusion", "location")]
    # The finding and the words that carry the wrong attribute, in the text as sent.
    assert [reference[s:e] for s, e in location.reference_spans] == ["RIGHT", "pleural effusion"]
    assert [candidate[s:e] for s, e in location.candidate_spans] == ["left", "pleural effusion"]
    severity = by_kind[("pleural_effusion", "severity")]
    assert [candidate[s:e] for s, e in severity.candidate_spans] == ["Large", "pleural effusion"]
    false = by_kind[("pneumothorax", None)]
    assert [candidate[s:e] for s, e in false.candidate_spans] == ["pneumothorax"]
    assert false.reference_spans == ()
