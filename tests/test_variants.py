"""Report perturbations: each kind does what it says, and the data tables read as the analysis reads them."""

from __future__ import annotations

import pytest

from reward_service.text.clinical_errors import compare_reports
from reward_service.text.findings import NEGATIVE, POSITIVE, UNCERTAIN, extract_findings
from reward_service.text.variants import (
    KINDS,
    drop_sentence,
    flip_negation,
    make_variant,
    make_variants,
    paraphrase,
    reference_class,
    repeat_sentence,
    swap_side,
    truncate,
    variant_data,
)

REFERENCE = (
    "Findings: The heart size is normal. There is a small left pleural effusion with adjacent atelectasis. "
    "No pneumothorax. Impression: Small left pleural effusion."
)


def statuses(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for mention in extract_findings(text).mentions:
        if mention.concept.finding is not None:
            found.setdefault(mention.concept.finding, mention.status)
    return found


def present(text: str) -> dict[str, int]:
    return {finding: status for finding, status in statuses(text).items() if status != NEGATIVE}


def test_every_kind_has_a_group_and_constants_do_not_depend_on_the_study() -> None:
    assert {spec.group for spec in KINDS.values()} == {"not_a_report", "degenerate", "honest"}
    other = "Large right pneumothorax."
    for kind, spec in KINDS.items():
        if spec.constant:
            assert make_variant(kind, REFERENCE) == make_variant(kind, other), kind


def test_study_dependent_kinds() -> None:
    context = {"indication": "Cough and fever."}
    variants = make_variants(REFERENCE, context, prompt="Write the report.")
    assert variants["reference"] == REFERENCE
    assert variants["echo_indication"] == "Cough and fever."
    assert variants["echo_prompt"] == "Write the report."
    # No indication or prompt: those kinds do not apply.
    assert "echo_indication" not in make_variants(REFERENCE, {"indication": "nan"})
    assert "echo_prompt" not in make_variants(REFERENCE)


def test_drop_sentence_keeps_the_section_header() -> None:
    assert drop_sentence(REFERENCE) == (
        "Findings: The heart size is normal. There is a small left pleural effusion with adjacent atelectasis. "
        "Impression: Small left pleural effusion."
    )
    assert drop_sentence("Findings: A. Impression: B.") == "Findings: A. Impression:"
    assert drop_sentence("No acute disease.") is None


def test_swap_side_swaps_only_the_first_side_word_and_keeps_case() -> None:
    assert swap_side("Small LEFT effusion. Left atelectasis.") == "Small RIGHT effusion. Left atelectasis."
    assert swap_side("Right lower lobe pneumonia.") == "Left lower lobe pneumonia."
    assert swap_side("No effusion.") is None


@pytest.mark.parametrize(
    ("report", "flipped"),
    [
        ("Heart size is normal. No pneumothorax.", "Heart size is normal. Pneumothorax."),
        ("There is no pleural effusion.", "There is pleural effusion."),
        ("Lungs are clear without consolidation.", "Lungs are clear with consolidation."),
        ("NO EVIDENCE OF PNEUMONIA.", "EVIDENCE OF PNEUMONIA."),
        ("Pneumothorax is not seen.", "Pneumothorax is seen."),
    ],
)
def test_flip_negation_turns_the_first_negated_statement_positive(report: str, flipped: str) -> None:
    assert flip_negation(report) == flipped
    before, after = statuses(report), statuses(flipped)
    changed = {finding: (before.get(finding), after.get(finding)) for finding in before | after}
    assert [change for change in changed.values() if change[0] != change[1]] == [(NEGATIVE, POSITIVE)]


def test_flip_negation_needs_a_negation() -> None:
    assert flip_negation("Small left pleural effusion.") is None


def test_repeat_sentence_says_the_longest_sentence_three_times_in_place() -> None:
    repeated = repeat_sentence(
        "Findings: Normal heart. There is a small left effusion. Impression: Effusion."
    )
    assert repeated == (
        "Findings: Normal heart. There is a small left effusion. There is a small left effusion. "
        "There is a small left effusion. Impression: Effusion."
    )


def test_truncate_cuts_inside_a_word_past_sixty_percent() -> None:
    text = truncate(REFERENCE)
    assert text is not None and REFERENCE.startswith(text)
    assert 0.6 * len(REFERENCE) <= len(text) < len(REFERENCE)
    assert text[-1].isalpha() and REFERENCE[len(text)].isalpha()  # cut mid-word
    assert truncate("No.") is None


@pytest.mark.parametrize(
    "report",
    [
        REFERENCE,
        "Findings: Heart size is normal. The lungs are clear. There is no pneumothorax. "
        "Impression: No acute cardiopulmonary abnormality.",
        "Moderate cardiomegaly. Small bilateral pleural effusions. No pneumothorax or pleural thickening.",
        "The endotracheal tube terminates 5 cm above the carina. Unchanged left lower lobe atelectasis.",
    ],
)
def test_paraphrase_rewords_without_changing_a_finding(report: str) -> None:
    reworded = paraphrase(report)
    assert reworded != report
    # The same findings present, and no clinical error either way (a pertinent negative may be added).
    assert present(reworded) == present(report)
    assert compare_reports(report, reworded) == []


def test_paraphrase_is_one_pass() -> None:
    # "within normal limits" -> "normal" must not be rewritten again by a rule that reads "normal".
    assert paraphrase("Heart size is within normal limits.") == "Heart size is normal."


def test_every_finding_phrase_is_read_as_a_finding() -> None:
    for phrase in variant_data()["finding_phrases"]:
        assert statuses(f"{phrase[0].upper()}{phrase[1:]}."), phrase


@pytest.mark.parametrize(
    ("kind", "status"), [("all_negated", NEGATIVE), ("all_hedged", UNCERTAIN), ("all_asserted", POSITIVE)]
)
def test_finding_lists_negate_hedge_or_assert_every_finding(kind: str, status: int) -> None:
    text = make_variant(kind, REFERENCE)
    assert text is not None
    found = statuses(text)
    assert len(found) >= 25
    assert {finding for finding, value in found.items() if value != status} <= {"device_malposition"} | (
        set() if status == POSITIVE else {"support_devices"}
    )


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("Heart size is normal. The lungs are clear. No pleural effusion.", "normal"),
        ("Calcified granuloma in the right upper lobe. Otherwise normal.", "minor"),
        ("Possible small left pleural effusion.", "minor"),
        ("Small left pleural effusion.", "abnormal"),
        ("Large right pneumothorax.", "abnormal"),
    ],
)
def test_reference_class(report: str, expected: str) -> None:
    assert reference_class(report) == expected
