"""The rule-based CheXpert labeler against hand-labelled sentences, and the ``chexpert_labels`` scorer.

Every expected label below was worked out by hand from the CheXpert labelling conventions
(1 positive, 0 negative, -1 uncertain, blank when not mentioned; "No Finding" 1 only when nothing
but support devices is positive or uncertain) and the documented deviations in
``reward_service/text/findings.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from reward_service.scorers import ScoreItem, scorer_class
from reward_service.settings import Settings
from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS, chexpert_labels, label_f1

EC = "Enlarged Cardiomediastinum"
CM = "Cardiomegaly"
LO = "Lung Opacity"
LL = "Lung Lesion"
ED = "Edema"
CO = "Consolidation"
PN = "Pneumonia"
AT = "Atelectasis"
PX = "Pneumothorax"
PE = "Pleural Effusion"
PO = "Pleural Other"
FR = "Fracture"
SD = "Support Devices"
NF = "No Finding"

# (report, expected labels; observations not listed are blank)
CASES: list[tuple[str, dict[str, int]]] = [
    # --- negation -------------------------------------------------------------------------------
    ("No pleural effusion.", {PE: 0, NF: 1}),
    ("There is no pneumothorax.", {PX: 0, NF: 1}),
    ("No focal consolidation, pneumothorax or large pleural effusion.", {CO: 0, PX: 0, PE: 0, NF: 1}),
    ("The lungs are clear without evidence of pneumonia.", {PN: 0, NF: 1}),
    ("Lungs are free of focal airspace disease.", {LO: 0, NF: 1}),
    ("Negative for acute displaced rib fracture.", {FR: 0, NF: 1}),
    ("The lungs are clear of consolidation and effusion.", {CO: 0, PE: 0, NF: 1}),
    ("No evidence of pulmonary edema.", {ED: 0, NF: 1}),
    ("Pneumothorax has resolved.", {PX: 0, NF: 1}),
    ("The previously seen left pleural effusion is no longer seen.", {PE: 0, NF: 1}),
    ("Pleural effusion is not seen.", {PE: 0, NF: 1}),
    ("Atelectasis and effusion have resolved.", {AT: 0, PE: 0, NF: 1}),
    ("No pneumothorax or pleural effusion is identified.", {PX: 0, PE: 0, NF: 1}),
    ("There is no mediastinal widening.", {EC: 0, NF: 1}),
    ("No new consolidation.", {CO: 0, NF: 1}),
    # negation scope ends at "but", ";" and sentence ends
    ("No pneumothorax, but there is a small right pleural effusion.", {PX: 0, PE: 1}),
    ("There is no pneumothorax; a small left effusion is present.", {PX: 0, PE: 1}),
    ("No pneumothorax. Small left pleural effusion.", {PX: 0, PE: 1}),
    ("Hyperexpanded lungs without focal consolidation.", {CO: 0}),
    # --- uncertainty ----------------------------------------------------------------------------
    ("Cannot exclude a small left pleural effusion.", {PE: -1}),
    ("Pneumonia cannot be ruled out.", {PN: -1}),
    ("Adenopathy cannot be excluded.", {}),
    ("Possible right lower lobe pneumonia.", {PN: -1}),
    ("Findings may represent atelectasis.", {AT: -1}),
    ("Bibasilar opacities, likely atelectasis.", {LO: 1, AT: -1}),
    ("Right lower lobe opacity concerning for pneumonia.", {LO: 1, PN: -1}),
    ("Atelectasis versus consolidation in the left base.", {AT: -1, CO: -1}),
    ("Left basilar atelectasis or scarring.", {AT: -1, LO: -1}),
    ("Findings suggestive of mild pulmonary edema.", {ED: -1}),
    ("Questionable small right apical pneumothorax.", {PX: -1}),
    ("Mild pulmonary vascular congestion.", {ED: -1}),
    ("Probable small bilateral pleural effusions.", {PE: -1}),
    ("Borderline heart size.", {CM: -1}),
    ("The heart may be mildly enlarged.", {CM: -1}),
    ("Pneumonia is suspected.", {PN: -1}),
    (
        "Patchy opacity in the left base which may represent atelectasis or pneumonia.",
        {LO: 1, AT: -1, PN: -1},
    ),
    # --- positive -------------------------------------------------------------------------------
    ("Small right pleural effusion.", {PE: 1}),
    ("Moderate cardiomegaly.", {CM: 1}),
    ("The heart is enlarged.", {CM: 1}),
    ("Enlarged cardiac silhouette.", {CM: 1}),
    ("Right upper lobe pneumonia.", {PN: 1}),
    ("Large left pneumothorax.", {PX: 1}),
    ("Interstitial edema.", {ED: 1}),
    ("Right lower lobe consolidation.", {CO: 1}),
    ("There is a 1.5 cm nodule in the left upper lobe.", {LL: 1}),
    ("Acute fracture of the right seventh rib.", {FR: 1}),
    ("Dense retrocardiac opacity.", {LO: 1}),
    ("Mediastinal widening.", {EC: 1}),
    ("Left pleural thickening.", {PO: 1}),
    ("Right hilar mass.", {LL: 1}),
    # --- anatomic descriptors need a qualifier ----------------------------------------------------
    ("The heart is normal in size.", {CM: 0, NF: 1}),
    ("Normal cardiomediastinal silhouette.", {EC: 0, NF: 1}),
    ("Heart size and mediastinal contours are within normal limits.", {CM: 0, EC: 0, NF: 1}),
    ("The heart and lungs have not changed.", {NF: 1}),
    ("The heart is not enlarged.", {CM: 0, NF: 1}),
    ("Heart size is upper limits of normal.", {CM: 0, NF: 1}),
    ("Cardiac and mediastinal contours are normal.", {CM: 0, EC: 0, NF: 1}),
    ("Heart size is normal with postoperative changes consistent with CABG.", {CM: 0, NF: 1}),
    # --- unmentions -------------------------------------------------------------------------------
    ("Small pericardial effusion.", {NF: 1}),
    ("Calcified granuloma in the right upper lobe.", {}),
    ("Catheter tip projects lateral to the midclavicular line.", {SD: 1, NF: 1}),
    # --- support devices and No Finding ---------------------------------------------------------
    ("Right internal jugular central venous catheter tip in the SVC.", {SD: 1, NF: 1}),
    ("Endotracheal tube terminates 4 cm above the carina. Lungs are clear.", {SD: 1, NF: 1}),
    ("Left-sided pacemaker with leads in the right atrium and ventricle.", {SD: 1, NF: 1}),
    ("No acute cardiopulmonary abnormality.", {NF: 1}),
    ("Mild degenerative changes of the thoracic spine.", {}),
    ("Emphysema without acute disease.", {}),
    ("Lungs are hyperinflated but clear.", {}),
    # --- several mentions: positive > uncertain > negative --------------------------------------
    ("No pleural effusion. Small left pleural effusion.", {PE: 1}),
    ("Possible left effusion. No right effusion.", {PE: -1}),
    ("Possible pneumonia. Right lower lobe pneumonia.", {PN: 1}),
    ("Congestive heart failure.", {ED: 1, CM: -1}),
    ("Cardiomegaly with mild interstitial edema and small bilateral effusions.", {CM: 1, ED: 1, PE: 1}),
    ("Stable cardiomegaly. No edema.", {CM: 1, ED: 0}),
    ("No acute fracture. Old healed left rib fractures.", {FR: 1}),
    # --- the CheXpert labeler's own published examples (stanfordmlgroup/chexpert-labeler) ----------
    (
        "Heart size normal and lungs are clear. No edema or pneumonia. No effusion",
        {NF: 1, CM: 0, ED: 0, PN: 0, PE: 0},
    ),
    (
        "1. Left pleural effusion with adjacent atelectasis. Right effusion is also present.\n\n"
        "2. Cardiomegaly without overt edema.",
        {CM: 1, ED: 0, AT: 1, PE: 1},
    ),
    (
        "Minimal patchy airspace disease within the lingula, may reflect atelectasis or consolidation.",
        {LO: 1, CO: -1, AT: -1},
    ),
    ("1. Stable mild cardiomegaly. 2. Hyperexpanded but clear lungs.", {CM: 1}),
]


def _vector(expected: dict[str, int]) -> tuple[int | None, ...]:
    return tuple(expected.get(name) for name in CHEXPERT_OBSERVATIONS)


def test_enough_hand_labelled_sentences() -> None:
    assert len(CASES) >= 60
    assert all(set(expected) <= set(CHEXPERT_OBSERVATIONS) for _, expected in CASES)


@pytest.mark.parametrize(("report", "expected"), CASES, ids=[report[:60] for report, _ in CASES])
def test_labeler_matches_hand_labels(report: str, expected: dict[str, int]) -> None:
    labels = chexpert_labels(report)
    got = {
        name: label for name, label in zip(CHEXPERT_OBSERVATIONS, labels, strict=True) if label is not None
    }
    assert labels == _vector(expected), f"got {got}"


def test_labels_ignore_case_and_line_breaks() -> None:
    assert chexpert_labels("NO PLEURAL EFFUSION.\nSMALL RIGHT PNEUMOTHORAX") == _vector({PE: 0, PX: 1})


def test_empty_report_is_no_finding() -> None:
    assert chexpert_labels("") == _vector({NF: 1})


def test_label_f1_definition() -> None:
    assert label_f1(set(), set(), CHEXPERT_OBSERVATIONS) == 1.0  # both normal: full agreement
    assert label_f1({PE}, set(), CHEXPERT_OBSERVATIONS) == 0.0
    assert label_f1({PE, CM}, {PE}, CHEXPERT_OBSERVATIONS) == pytest.approx(2 / 3)
    # Only the listed observations count.
    assert label_f1({PX}, set(), (CM, ED, CO, AT, PE)) == 1.0


def _score(options: dict, reference: str, candidate: str):
    cls = scorer_class("chexpert_labels")
    scorer = cls("chexpert_labels", cls.Options.model_validate(options), Settings())
    item = ScoreItem(id="1", reference=reference, candidate=candidate)
    return asyncio.run(scorer.score_batch([item], {}))[0]


def test_scorer_numbers_and_details() -> None:
    reference = "Small right pleural effusion. Mild cardiomegaly. No pneumothorax."
    candidate = "Possible small right pleural effusion. No cardiomegaly. Left pneumothorax."
    # reference present: Pleural Effusion, Cardiomegaly; candidate present (rrg): Pleural Effusion,
    # Pneumothorax. TP 1, FP 1, FN 1 -> F1 = 2/4; top 5 (no Pneumothorax): TP 1, FN 1 -> 2/3;
    # accuracy: disagree on Cardiomegaly and Pneumothorax -> 12/14.
    result = _score({}, reference, candidate)
    assert result.error is None
    assert result.score == pytest.approx(0.5)
    assert result.details["micro_f1_top5"] == pytest.approx(2 / 3)
    assert result.details["accuracy"] == pytest.approx(12 / 14)
    assert result.details["reference_labels"][PE] == 1
    assert result.details["candidate_labels"][PE] == -1
    assert _score({"metric": "micro_f1_top5"}, reference, candidate).score == pytest.approx(2 / 3)
    # Uncertain counted absent: candidate present = Pneumothorax only -> TP 0 -> F1 0.
    assert _score({"mapping": "positive_only"}, reference, candidate).score == 0.0


def test_scorer_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="metric"):
        scorer_class("chexpert_labels").Options.model_validate({"metric": "macro"})


def test_real_reports_label_without_error(shared_reports: dict[str, dict]) -> None:
    positives = 0
    for study in shared_reports.values():
        report = study["report"]
        labels = chexpert_labels(report)
        assert len(labels) == 14
        assert set(labels) <= {1, 0, -1, None}
        positives += any(label == 1 for label in labels[:-1])
        assert _score({}, report, report).score == 1.0
    # The corpus has abnormal studies; a labeler that finds none is broken.
    assert positives > 50
