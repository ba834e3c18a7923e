"""The playground's example reports and their generated variants."""

from __future__ import annotations

import pytest

from reward_service.playground import make_variants, playground_examples
from reward_service.playground.variants import dropped_finding, negation_flip, paraphrase, side_swap
from reward_service.text.chexpert import chexpert_labels, present_observations
from reward_service.text.clinical_errors import compare_reports
from reward_service.text.sentences import sentence_spans, split_sentences

#: The error category each variant is meant to cause, as the rule-based clinical-error scorer names it.
EXPECTED_CATEGORIES = {"negation_flip": {"a", "b"}, "side_swap": {"c"}, "dropped_finding": {"b"}}

REPORT = (
    "Findings: Heart size is normal. There is a small left pleural effusion. No pneumothorax. "
    "The lungs are otherwise clear. Impression: Small left pleural effusion."
)


def present(report: str) -> frozenset[str]:
    return present_observations(chexpert_labels(report))


def error_categories(reference: str, candidate: str) -> set[str]:
    return {error.category for error in compare_reports(reference, candidate)}


def assert_variant_does_what_it_says(report: str, kind: str, text: str) -> None:
    assert text != report
    if kind == "paraphrase":
        assert present(text) == present(report)
        assert not [error for error in compare_reports(report, text) if error.significant]
    else:
        assert error_categories(report, text) & EXPECTED_CATEGORIES[kind], (kind, text)


@pytest.mark.parametrize(
    "text",
    ["A. B c.  D\n\nE", " x. ", "", "Findings: a b. Impression: 1. No x.", "One sentence without end"],
)
def test_sentence_spans_cut_what_split_sentences_returns(text: str) -> None:
    assert [text[start:end] for start, end in sentence_spans(text)] == split_sentences(text)


def test_negation_flip_states_the_most_significant_ruled_out_finding() -> None:
    variant = negation_flip(REPORT)
    assert variant is not None
    assert "Pneumothorax." in variant.text and "No pneumothorax" not in variant.text
    assert variant.text.replace("Pneumothorax.", "No pneumothorax.") == REPORT
    assert "a" in error_categories(REPORT, variant.text)


def test_negation_flip_rules_out_a_finding_when_nothing_is_ruled_out() -> None:
    report = "Findings: The heart is mildly enlarged. Impression: Cardiomegaly."
    variant = negation_flip(report)
    # Cardiomegaly is stated twice, so negating one sentence would leave it stated: nothing to flip.
    assert variant is None
    report = "Findings: Left hemidiaphragm is elevated. The lungs are clear."
    variant = negation_flip(report)
    assert variant is not None
    assert variant.text == "Findings: Left hemidiaphragm is not elevated. The lungs are clear."


def test_side_swap_exchanges_sides_keeping_case() -> None:
    variant = side_swap(REPORT)
    assert variant is not None
    assert variant.text == REPORT.replace("left", "right").replace("Left", "Right")
    assert "c" in error_categories(REPORT, variant.text)
    assert side_swap("Findings: No pneumothorax. Left lung is clear.") is None  # no stated finding with a side
    # A finding on both sides stays on both sides: the swap would change nothing clinically.
    assert side_swap("Small left pleural effusion. Small right pleural effusion.") is None


def test_dropped_finding_removes_every_sentence_stating_it_and_keeps_section_labels() -> None:
    variant = dropped_finding(REPORT)
    assert variant is not None
    assert variant.text == "Findings: Heart size is normal. No pneumothorax. The lungs are otherwise clear."
    assert "b" in error_categories(REPORT, variant.text)
    report = "Findings: Large right pneumothorax. Heart size is normal. Impression: Right pneumothorax. Call placed."
    variant = dropped_finding(report)
    assert variant is not None
    assert variant.text == "Findings: Heart size is normal. Impression: Call placed."
    assert dropped_finding("Findings: No pneumothorax. Heart size is normal.") is None


def test_paraphrase_reorders_findings_and_rewords_without_changing_them() -> None:
    variant = paraphrase(REPORT)
    assert variant is not None
    assert variant.text.startswith("Findings: The lungs are otherwise clear. No pneumothorax.")
    assert variant.text.endswith("Impression: Small left pleural effusion.")
    assert "the heart is normal in size" in variant.text.lower()
    assert_variant_does_what_it_says(REPORT, "paraphrase", variant.text)
    # Wrapped lines are not sentences: they are reworded but never reordered.
    wrapped = "Findings: There is no pleural\neffusion. Heart size is normal."
    assert paraphrase(wrapped).text == "Findings: There is no evidence of pleural\neffusion. The heart is normal in size."  # type: ignore[union-attr]


def test_every_shipped_example_has_all_four_variants_doing_what_they_say() -> None:
    examples = playground_examples()
    assert len(examples.examples) >= 5
    assert "MIT" in examples.license and "ReXrank" in examples.source
    for example in examples.examples:
        kinds = [candidate.kind for candidate in example.candidates]
        assert kinds == ["identical", "paraphrase", "negation_flip", "side_swap", "dropped_finding"], example.id
        assert example.candidates[0].text == example.reference
        for candidate in example.candidates[1:]:
            assert_variant_does_what_it_says(example.reference, candidate.kind, candidate.text)
            assert candidate.note


def test_shipped_sample_is_copied_unchanged_from_the_shared_reports(shared_reports: dict[str, dict]) -> None:
    for example in playground_examples().examples:
        study = shared_reports[example.id]
        assert example.reference == study["report"]
        assert example.context == study["context"]


def test_variants_of_every_shared_report_do_what_they_say(shared_reports: dict[str, dict]) -> None:
    """Over all 590 IU X-ray test reports: a variant is only generated where it makes its error."""
    generated: dict[str, int] = {}
    for study in shared_reports.values():
        report = study["report"]
        for variant in make_variants(report):
            generated[variant.kind] = generated.get(variant.kind, 0) + 1
            assert_variant_does_what_it_says(report, variant.kind, variant.text)
    # Every report gets a paraphrase; the others need a finding of the right shape.
    assert generated["paraphrase"] == len(shared_reports)
    assert min(generated.values()) >= 50, generated
